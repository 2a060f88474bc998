"""Turn sweep points into something that runs them: shell lines, a TPU-pod command, an sbatch script,
a SkyPilot task or a W&B sweep. `python -m launch.launchers SWEEP_FILE --target=local|tpu|slurm|skypilot|wandb
[--run]` prints (or, for local, runs) it.
"""

from __future__ import annotations

import argparse
import shlex
import subprocess
import sys

import yaml

from launch.sweep import Point, expand, load_sweep

TARGETS = ("local", "tpu", "slurm", "skypilot", "wandb")


def local(points: list[Point]) -> str:
  """One command per line, run one after another."""
  return "\n".join(p.command for p in points) + "\n"


def tpu_pod(points: list[Point], *, tpu: str, zone: str, project: str = "", repo_dir: str = "~/lightft_jax") -> str:
  """gcloud commands that run each point on every worker of a TPU pod slice (jax.distributed auto-detects)."""
  proj = f" --project={project}" if project else ""
  lines = []
  for p in points:
    remote = f"cd {repo_dir} && {p.command}"
    lines.append(f"gcloud compute tpus tpu-vm ssh {tpu} --zone={zone}{proj} --worker=all "
                 f"--command={shlex.quote(remote)}")
  return "\n".join(lines) + "\n"


def slurm(points: list[Point], *, nodes: int = 1, gpus_per_node: int = 8, time: str = "24:00:00",
          partition: str = "", job_name: str = "lightft") -> str:
  """An sbatch array script: task i runs point i; srun starts one process per node (jax.distributed
  picks up the Slurm environment)."""
  part = f"#SBATCH --partition={partition}\n" if partition else ""
  cases = "\n".join(f"  {i}) srun {p.command} ;;" for i, p in enumerate(points))
  return (f"#!/bin/bash\n#SBATCH --job-name={job_name}\n#SBATCH --array=0-{len(points) - 1}\n"
          f"#SBATCH --nodes={nodes}\n#SBATCH --ntasks-per-node=1\n#SBATCH --gpus-per-node={gpus_per_node}\n"
          f"#SBATCH --time={time}\n{part}#SBATCH --output=slurm-%A_%a.out\nset -euo pipefail\n"
          f"case \"$SLURM_ARRAY_TASK_ID\" in\n{cases}\nesac\n")


def skypilot(points: list[Point], *, accelerators: str = "H100:1", num_nodes: int = 1) -> str:
  """A multi-document SkyPilot task YAML, one task per point."""
  docs = []
  for p in points:
    docs.append({"name": f"lightft-{p.name}"[:63], "num_nodes": num_nodes,
                 "resources": {"accelerators": accelerators}, "workdir": ".",
                 "setup": "pip install -r requirements.txt && pip install --no-deps -r requirements-assets.txt "
                          "&& pip install --no-deps -e .",
                 "run": p.command})
  return yaml.safe_dump_all(docs, sort_keys=False)


def wandb_sweep(sweep: dict, *, method: str = "grid", metric: str = "test/accuracy") -> str:
  """W&B sweep YAML: the grid as parameters, the agent runs main.py with --config.KEY=VALUE arguments."""
  # the agent passes each parameter as --NAME=VALUE: names carry the `config.` prefix main.py reads
  params = {f"config.{k}": {"values": list(v)} for k, v in (sweep.get("grid") or {}).items()}
  doc = {"program": "lightft_jax/main.py", "method": method, "metric": {"name": metric, "goal": "maximize"},
         "parameters": params,
         "command": ["${env}", "python", "-m", "lightft_jax.main", f"--config={sweep['config']}",
                     f"--workdir={sweep.get('workdir', 'runs/wandb_sweep')}/${{env:WANDB_RUN_ID}}",
                     "--config.wandb.mode=online", "${args}"]}
  return yaml.safe_dump(doc, sort_keys=False)


def main(argv=None) -> int:
  ap = argparse.ArgumentParser(description=__doc__)
  ap.add_argument("sweep")
  ap.add_argument("--target", choices=TARGETS, default="local")
  ap.add_argument("--run", action="store_true", help="local only: run the commands one after another")
  ap.add_argument("--tpu", default="my-tpu")
  ap.add_argument("--zone", default="us-central2-b")
  args = ap.parse_args(argv)
  sweep = load_sweep(args.sweep)
  points = expand(sweep)
  if args.target == "local" and args.run:
    for p in points:
      print(p.command, flush=True)
      subprocess.run(p.command, shell=True, check=True)
    return 0
  out = {"local": lambda: local(points), "tpu": lambda: tpu_pod(points, tpu=args.tpu, zone=args.zone),
         "slurm": lambda: slurm(points), "skypilot": lambda: skypilot(points),
         "wandb": lambda: wandb_sweep(sweep)}[args.target]()
  sys.stdout.write(out)
  return 0


if __name__ == "__main__":
  sys.exit(main())
