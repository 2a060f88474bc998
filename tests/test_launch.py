"""Sweep launchers: what each backend would run, checked by running it where that is possible here (the local
backend for real, shell scripts under bash with stub `srun` / `python` / `sky`, W&B's own agent code building
the sweep command)."""

import json
import os
import random
import re
import shlex
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import yaml

from launch import launchers, wandb_entry
from launch.sweep import expand, load_sweep, run_args, run_status, started_by

ROOT = Path(__file__).parent.parent
SWEEP = {"config": "configs/quickstart.py", "workdir": "runs/s", "grid": {"peft.r": [4, 8], "optimizer.lr": [1e-3, 3e-3]},
         "list": [{"seed": 0}, {"seed": 1}]}


def write_sweep(path: Path, sweep: dict) -> Path:
  path.write_text(f"def get_sweep():\n  return {sweep!r}\n")
  return path


def stub(bin_dir: Path, name: str, log: Path) -> None:
  """An executable `name` on bin_dir that appends its argv (JSON) to `log` and succeeds."""
  bin_dir.mkdir(exist_ok=True)
  exe = bin_dir / name
  exe.write_text(f"#!{sys.executable}\nimport json, sys\n"
                 f"open({str(log)!r}, 'a').write(json.dumps([{name!r}] + sys.argv[1:]) + '\\n')\n")
  exe.chmod(exe.stat().st_mode | stat.S_IEXEC)


def calls(log: Path) -> list[list[str]]:
  return [json.loads(l) for l in log.read_text().splitlines()] if log.exists() else []


def finished(workdir: Path, status: str = "completed") -> None:
  workdir.mkdir(parents=True, exist_ok=True)
  (workdir / "results.json").write_text(json.dumps({"status": status}))


# ---- sweep expansion


def test_grid_times_list_gives_one_command_and_workdir_per_point():
  points = expand(SWEEP)
  assert len(points) == 8 and len({p.workdir for p in points}) == 8
  args = shlex.split(points[0].command)
  assert args[:3] == ["python", "-m", "lightft_jax.main"] and "--config=configs/quickstart.py" in args
  assert {"--config.peft.r=4", "--config.optimizer.lr=0.001", "--config.seed=0", f"--workdir={points[0].workdir}"} \
      <= set(args)
  assert all(p.workdir.startswith("runs/s/") for p in points)
  combos = {(p.overrides["peft.r"], p.overrides["optimizer.lr"], p.overrides["seed"]) for p in points}
  assert combos == {(r, lr, s) for r in (4, 8) for lr in (1e-3, 3e-3) for s in (0, 1)}
  with pytest.raises(ValueError, match="non-empty lists"):
    expand({"config": "c.py", "grid": {"seed": 3}})
  with pytest.raises(ValueError, match="config"):
    expand({"grid": {}})


def test_arg_key_sets_the_config_argument_and_names_come_from_varying_keys():
  points = expand({"config": "configs/quickstart.py:steps=5", "workdir": "runs/m", "grid": {"seed": [0]},
                   "list": [{"arg": "method=lora,targets=qv", "eval_every": 0}, {"arg": "method=ia3", "eval_every": 0}]})
  assert [p.workdir for p in points] == ["runs/m/method=lora_targets=qv", "runs/m/method=ia3"]
  args = shlex.split(points[0].command)
  assert "--config=configs/quickstart.py:steps=5,method=lora,targets=qv" in args and "--config.eval_every=0" in args
  assert not any(a.startswith("--config.arg") for a in args)
  for p in points:
    check_config(shlex.split(p.command))


def test_tuple_values_reach_the_config_as_tuples_and_name_points_readably():
  points = expand({"config": "configs/icl_eval.py:k=4", "workdir": "runs/i",
                   "list": [{"seed": s, "icl.seeds": (s,)} for s in (1, 2)]})
  assert [p.workdir for p in points] == ["runs/i/seed=1_seeds=1", "runs/i/seed=2_seeds=2"]
  from lightft_jax import main as entry
  from lightft_jax.train import config_lib
  args = shlex.split(points[1].command)
  config = config_lib.load_config("configs/icl_eval.py:k=4", entry.split_overrides(args)[1])
  assert tuple(config.icl.seeds) == (2,) and config.seed == 2


def check_config(args: list[str]) -> None:
  """Loads the config a lightft_jax.main command line names, with its overrides (a misspelled key raises)."""
  from lightft_jax import main as entry
  from lightft_jax.train import config_lib
  spec = next(a.split("=", 1)[1] for a in args if a.startswith("--config="))
  config_lib.load_config(spec, entry.split_overrides(args)[1])


def test_quickstart_sweep_names_real_config_keys():
  points = expand(load_sweep(ROOT / "configs" / "quickstart_sweep.py"))
  assert len(points) == 6
  for p in points:
    check_config(shlex.split(p.command))
  with pytest.raises(KeyError):
    check_config(shlex.split(p.command) + ["--config.optimizer.lrr=1"])


SWEEP_FILES = sorted([*ROOT.glob("configs/*_sweep.py"), *ROOT.glob("experiments/*/sweep*.py")])


@pytest.mark.parametrize("path", SWEEP_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_committed_sweep_point_is_a_valid_config(path):
  """The paper-sized sweeps (never run on 2 CPU cores) and the CPU-sized ones: each point's config file, argument
  and overrides load and pass validation, so a sweep does not fail on a misspelled key when it reaches a cluster."""
  points = expand(load_sweep(path))
  assert points
  for p in points:
    check_config(shlex.split(p.command))


def test_run_status(tmp_path):
  assert run_status(tmp_path / "nothing") == "new"
  (tmp_path / "started").mkdir()
  assert run_status(tmp_path / "started") == "started"
  finished(tmp_path / "done")
  finished(tmp_path / "stopped", "preempted")
  assert run_status(tmp_path / "done") == "completed" and run_status(tmp_path / "stopped") == "preempted"


# ---- local backend


def test_dry_run_prints_what_would_run_and_skips_completed_points(tmp_path, capsys):
  sweep = write_sweep(tmp_path / "s.py", {**SWEEP, "workdir": str(tmp_path / "runs")})
  points = expand(load_sweep(sweep), python="py")
  finished(Path(points[0].workdir))  # done: skipped
  finished(Path(points[1].workdir), "preempted")  # interrupted: run again (it resumes)
  Path(points[2].workdir).mkdir()  # started, no results yet: run again
  assert launchers.main([str(sweep), "--dry-run", "--python=py"]) == 0
  out, err = capsys.readouterr()
  assert out.splitlines() == [p.command for p in points[1:]]
  assert f"skipped (completed): {points[0].workdir}" in err
  assert not Path(points[3].workdir).exists()  # nothing ran


def test_a_finished_run_of_another_command_stops_the_launch(tmp_path, capsys):
  sweep = write_sweep(tmp_path / "s.py", {**SWEEP, "workdir": str(tmp_path / "runs")})
  points = expand(load_sweep(sweep), python="py")
  same, changed, unrecorded = (Path(p.workdir) for p in points[:3])
  for d in (same, changed, unrecorded):
    finished(d)
  # the same point, started by another interpreter from another root: the same run
  (same / "command.txt").write_text(points[0].command.replace("py -m", "/usr/bin/python3 -m")
                                    .replace(str(tmp_path), "/elsewhere") + "\n")
  (changed / "command.txt").write_text(points[1].command.replace("--config.optimizer.lr=", "--config.optimizer.lr=9")
                                       + "\n")
  with pytest.raises(SystemExit) as e:
    launchers.main([str(sweep), "--dry-run", "--python=py"])
  msg = str(e.value)
  assert msg.startswith("1 finished run(s)") and str(changed) in msg and str(same) not in msg
  assert "--config.optimizer.lr=9" in msg and "move each directory away" in msg
  shutil.rmtree(changed)  # moved away: the point runs again; the other two are skipped
  assert launchers.main([str(sweep), "--dry-run", "--python=py"]) == 0
  out, err = capsys.readouterr()
  assert out.splitlines() == [p.command for p in points[1:2] + points[3:]]
  assert f"skipped (completed): {same}\n" in err  # checked against its point
  assert f"skipped (completed): {unrecorded} (command.txt missing: not checked against the point)" in err


def test_points_glob_selects_points_by_run_directory_name(tmp_path, capsys):
  sweep = write_sweep(tmp_path / "s.py", {**SWEEP, "workdir": str(tmp_path / "runs")})
  points = expand(load_sweep(sweep), python="py")
  name = Path(points[1].workdir).name
  assert launchers.main([str(sweep), "--dry-run", "--python=py", f"--points={name}"]) == 0
  assert capsys.readouterr().out.splitlines() == [points[1].command]
  with pytest.raises(SystemExit, match=f"match no point(.|\\n)*{re.escape(name)}"):
    launchers.main([str(sweep), "--dry-run", "--python=py", "--points=nothing*"])


def test_local_reruns_interrupted_points_only(tmp_path, capsys):
  log = tmp_path / "calls.jsonl"
  stub(tmp_path / "bin", "python", log)
  sweep = write_sweep(tmp_path / "s.py", {"config": "configs/quickstart.py", "workdir": str(tmp_path / "runs"),
                                          "grid": {"seed": [0, 1, 2]}})
  points = expand(load_sweep(sweep))
  finished(Path(points[0].workdir))
  finished(Path(points[2].workdir), "preempted")
  assert launchers.main([str(sweep), f"--python={tmp_path / 'bin' / 'python'}"]) == 0
  ran = calls(log)
  assert [c[1:] for c in ran] == [shlex.split(p.command)[1:] for p in points[1:]]
  assert f"--workdir={points[2].workdir}" in ran[1]


def tiny_data(d: Path) -> Path:
  r = random.Random(0)
  d.mkdir(parents=True)
  for split, n in (("train", 32), ("validation", 8), ("test", 8)):
    with (d / f"{split}.jsonl").open("w") as f:
      for _ in range(n):
        y = r.randint(0, 1)
        f.write(json.dumps({"text": f"the film was {r.choice(['great', 'fine'] if y else ['dull', 'bad'])}",
                            "label": y}) + "\n")
  return d


@pytest.fixture(scope="module")
def local_sweep():
  """A real 2-point sweep (tiny-bert, 3 steps, seeds 0 and 1) run by the local backend."""
  tmp = Path(tempfile.mkdtemp(prefix="lightft_launch_"))
  data = tiny_data(tmp / "data")
  sweep = write_sweep(tmp / "tiny_sweep.py", {
      "config": f"configs/jsonl_classifier.py:data={data},steps=3", "workdir": str(tmp / "runs"),
      "grid": {"seed": [0, 1]}, "list": [{"logging.plots": False}]})
  env = {"JAX_PLATFORMS": "cpu", "XLA_FLAGS": "--xla_force_host_platform_device_count=1",
         "JAX_COMPILATION_CACHE_DIR": str(Path(tempfile.gettempdir()) / f"lightft_launch_cache_{os.getuid()}"),
         "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0", "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "0"}
  proc = subprocess.run([sys.executable, "-m", "launch.launchers", str(sweep), "--target=local"], cwd=ROOT,
                        env={**os.environ, **env}, capture_output=True, text=True, timeout=300)
  return sweep, proc


def test_local_backend_runs_each_point_in_its_own_run_directory(local_sweep):
  sweep, proc = local_sweep
  assert proc.returncode == 0, proc.stderr[-3000:]
  points = expand(load_sweep(sweep))
  assert len(points) == 2
  digests = set()
  for p in points:
    res = json.loads(Path(p.workdir, "results.json").read_text())
    assert res["status"] == "completed" and res["step"] == 3
    assert json.loads(Path(p.workdir, "config.json").read_text())["seed"] == p.overrides["seed"]
    assert run_args(started_by(p.workdir)) == run_args(p.command)  # command.txt: the point's own command
    digests.add(res["trainable_params_sha256"])
  assert len(digests) == 2  # different seeds, different trained parameters
  again = subprocess.run([sys.executable, "-m", "launch.launchers", str(sweep), "--target=local"], cwd=ROOT,
                         capture_output=True, text=True, timeout=60)
  assert again.returncode == 0 and "every point is completed" in again.stderr and again.stdout == ""


def test_aggregate_reads_the_local_sweep(local_sweep, tmp_path):
  from launch import aggregate
  sweep, proc = local_sweep
  assert proc.returncode == 0, proc.stderr[-3000:]
  summary = aggregate.aggregate([load_sweep(sweep)["workdir"]], tmp_path, ["peft.method"])
  (row,) = summary["rows"]
  assert row["peft.method"] == "full" and row["n_seeds"] == 2 and row["ms_per_step_from"] == "examples_per_s"
  assert 0.0 <= row["test/accuracy_mean"] <= 1.0 and row["trainable_params"] > 0 and row["ms_per_step"] > 0
  assert (tmp_path / "metric_vs_params.png").stat().st_size > 0 and (tmp_path / "learning_curves.png").exists()


def test_aggregate_copies_each_run_record_beside_the_summary(local_sweep, tmp_path, capsys):
  from launch import aggregate
  sweep, proc = local_sweep
  assert proc.returncode == 0, proc.stderr[-3000:]
  root = Path(load_sweep(sweep)["workdir"])
  assert aggregate.main([str(root), "--group-by=peft.method", f"--out={tmp_path}", "--copy-runs"]) == 0
  capsys.readouterr()
  summary = json.loads((tmp_path / "summary.json").read_text())
  assert "--copy-runs" in summary["command"]
  for run in summary["rows"][0]["runs"]:  # the summary's runs, each record byte-identical, no checkpoints
    copy = tmp_path / "runs" / Path(run).name
    assert sorted(f.name for f in copy.iterdir()) == ["classification_report.txt", "command.txt", "config.json",
                                                      "metrics.jsonl", "results.json"]
    for f in copy.iterdir():
      assert f.read_bytes() == (Path(run) / f.name).read_bytes()


def test_copied_runs_that_share_a_name_keep_their_sweep_folder(tmp_path):
  from launch.aggregate import copy_runs
  dirs = [tmp_path / "runs" / sweep / "seed=0" for sweep in ("a", "b")] + [tmp_path / "runs" / "a" / "seed=1"]
  for i, d in enumerate(dirs):
    d.mkdir(parents=True)
    (d / "results.json").write_text(str(i))
    (d / "checkpoint.bin").write_text("not copied")
  out = copy_runs(dirs, tmp_path / "out")
  assert [str(o.relative_to(tmp_path / "out")) for o in out] == ["a/seed=0", "b/seed=0", "a/seed=1"]
  assert [(o / "results.json").read_text() for o in out] == ["0", "1", "2"]
  assert not any((o / "checkpoint.bin").exists() for o in out)
  assert [str(o.relative_to(tmp_path / "flat")) for o in copy_runs(dirs[1:], tmp_path / "flat")] == ["seed=0", "seed=1"]


# ---- Slurm, TPU pod


def test_slurm_script_from_command_line_options_runs_its_array_task(tmp_path, capsys):
  sweep = write_sweep(tmp_path / "s.py", {**SWEEP, "workdir": str(tmp_path / "runs")})
  out = tmp_path / "launch"
  assert launchers.main([str(sweep), "--target=slurm", "--dry-run", "--nodes=2", "--gpus-per-node=4",
                         "--partition=gpu", "--account=lab", "--time=01:00:00", f"--out={out}"]) == 0
  printed = capsys.readouterr().out
  script = printed.split(f"# ---- {out}/sweep.sbatch\n", 1)[1].rsplit("sbatch ", 1)[0]
  assert printed.rstrip().splitlines()[-1] == f"sbatch {out}/sweep.sbatch" and not out.exists()
  for line in ("--array=0-7", "--nodes=2", "--gpus-per-node=4", "--partition=gpu", "--account=lab", "--time=01:00:00"):
    assert f"#SBATCH {line}\n" in script
  path = tmp_path / "job.sbatch"
  path.write_text(script)
  assert subprocess.run(["bash", "-n", str(path)]).returncode == 0
  log = tmp_path / "srun.jsonl"
  stub(tmp_path / "bin", "srun", log)
  env = {**os.environ, "PATH": f"{tmp_path / 'bin'}:{os.environ['PATH']}", "SLURM_ARRAY_TASK_ID": "5"}
  assert subprocess.run(["bash", str(path)], env=env).returncode == 0
  assert calls(log) == [["srun", *shlex.split(expand(load_sweep(sweep))[5].command)]]
  assert subprocess.run(["bash", str(path)], env={**env, "SLURM_ARRAY_TASK_ID": "8"},
                        capture_output=True).returncode != 0


def test_tpu_commands_take_name_zone_and_type_from_the_command_line(tmp_path, capsys):
  sweep = write_sweep(tmp_path / "s.py", {**SWEEP, "workdir": str(tmp_path / "runs")})
  with pytest.raises(SystemExit):
    launchers.main([str(sweep), "--target=tpu", "--dry-run"])  # needs --tpu and --zone
  capsys.readouterr()
  assert launchers.main([str(sweep), "--target=tpu", "--dry-run", "--tpu=pod", "--zone=us-east5-a",
                         "--tpu-type=v5litepod-16", "--project=p"]) == 0
  cmds = [shlex.split(l) for l in capsys.readouterr().out.splitlines()]
  assert cmds[0][:6] == ["gcloud", "compute", "tpus", "tpu-vm", "create", "pod"]
  assert {"--zone=us-east5-a", "--project=p", "--accelerator-type=v5litepod-16"} <= set(cmds[0])
  assert "jax[tpu]==" in cmds[3][-1] and "--worker=all" in cmds[3]
  points = expand(load_sweep(sweep))
  assert len(cmds) == 4 + len(points)
  for c, p in zip(cmds[4:], points):
    assert c[4:6] == ["ssh", "pod"] and "--worker=all" in c and c[-1] == f"--command=cd ~/lightft_jax && {p.command}"


# ---- SkyPilot


def test_skypilot_setup_installs_the_accelerators_jax():
  points = expand(SWEEP)[:1]
  setup = lambda acc: yaml.safe_load(launchers.skypilot(points, accelerators=acc)[points[0].name])["setup"]
  version = launchers.jax_version()
  assert version and f"'jax[cuda12]=={version}'" in setup("H100:8")
  assert f"'jax[tpu]=={version}'" in setup("tpu-v5e-8")
  assert "jax[" not in setup("") and "pip install -r requirements.txt" in setup("")


def test_skypilot_one_task_per_point_launched_in_parallel(tmp_path, capsys, monkeypatch):
  sweep = write_sweep(tmp_path / "s.py", {**SWEEP, "workdir": str(tmp_path / "runs")})
  out = tmp_path / "launch"
  log = tmp_path / "sky.jsonl"
  stub(tmp_path / "bin", "sky", log)
  monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:{os.environ['PATH']}")
  args = [str(sweep), "--target=skypilot", "--accelerators=A100:8", "--nodes=2", "--zone=us-central1-a",
          f"--out={out}"]
  assert launchers.main(args + ["--dry-run"]) == 0
  printed = capsys.readouterr().out
  assert not out.exists() and not log.exists()
  assert launchers.main(args) == 0
  points = expand(load_sweep(sweep))
  launched = sorted(calls(log))
  assert len(launched) == len(points) == 8
  assert printed.count("sky jobs launch -y -d -n lightft-") == 8 and "lightft-r-4_lr-0.001_seed-0 " in printed
  for c in launched:
    assert c[:4] == ["sky", "jobs", "launch", "-y"] and Path(c[-1]).parent == out
  tasks = {p.name: yaml.safe_load(Path(out, f"{p.name}.yaml").read_text()) for p in points}
  for p in points:
    t = tasks[p.name]
    assert t["num_nodes"] == 2 and t["resources"] == {"accelerators": "A100:8", "zone": "us-central1-a"}
    assert p.command in t["run"]
  names = {t["name"] for t in tasks.values()}
  assert len(names) == 8 and all(re.fullmatch(r"[a-zA-Z]([-_.a-zA-Z0-9]*[a-zA-Z0-9])?", n) for n in names)


def test_skypilot_multinode_run_starts_jax_distributed_from_skypilot_env(tmp_path):
  (point,) = expand({"config": "configs/quickstart.py", "workdir": "runs/x", "grid": {"seed": [3]}})
  run = yaml.safe_load(launchers.skypilot([point], nodes=2, port=1234)[point.name])["run"]
  log = tmp_path / "python.jsonl"
  stub(tmp_path / "bin", "python", log)
  env = {**os.environ, "PATH": f"{tmp_path / 'bin'}:{os.environ['PATH']}", "SKYPILOT_NODE_IPS": "10.0.0.7\n10.0.0.9\n",
         "SKYPILOT_NUM_NODES": "2", "SKYPILOT_NODE_RANK": "1"}
  assert subprocess.run(["bash", "-c", run], env=env).returncode == 0
  (argv,) = calls(log)
  assert argv[1:] == shlex.split(point.command)[1:] + [
      "--config.distributed.coordinator_address=10.0.0.7:1234", "--config.distributed.num_processes=2",
      "--config.distributed.process_id=1"]
  single = yaml.safe_load(launchers.skypilot([point], nodes=1)[point.name])["run"]
  assert single == point.command


def test_skypilot_bucket_holds_the_run_directories(tmp_path, capsys):
  sweep = write_sweep(tmp_path / "s.py", {**SWEEP, "workdir": "runs/s"})
  assert launchers.main([str(sweep), "--target=skypilot", "--dry-run", "--bucket=gs://b", f"--out={tmp_path}"]) == 0
  printed = capsys.readouterr().out.split("sky jobs launch")[0]
  docs = [yaml.safe_load(chunk.split("\n", 1)[1]) for chunk in printed.split("# ---- ")[1:]]
  assert len(docs) == 8
  assert docs[0]["file_mounts"]["/lightft_runs"]["source"] == "gs://b"
  assert "--workdir=/lightft_runs/runs/s/" in docs[0]["run"]
  assert launchers.main([str(sweep), "--target=skypilot", "--dry-run", "--bucket=gs://b"]) == 0
  assert capsys.readouterr().out.splitlines()[-1].endswith(" runs/s/_launch/r=8_lr=0.003_seed=1.yaml")


# ---- W&B sweeps


class _Recorded:
  """Stands in for wandb's AgentProcess: records what the agent would start."""
  started = []

  def __init__(self, command=None, env=None, **kwargs):
    _Recorded.started.append((command, env))


def agent_commands(sweep_yaml: dict, runs: list[tuple[str, dict]], tmp_path, monkeypatch) -> list[tuple[list, dict]]:
  """The commands wandb's own agent code builds for these (run id, parameters) runs of the sweep."""
  from wandb import wandb_agent
  monkeypatch.setattr(wandb_agent, "AgentProcess", _Recorded)
  monkeypatch.setenv("WANDB_DIR", str(tmp_path))
  monkeypatch.setenv("WANDB_SWEEP_ID", "sw1")
  monkeypatch.setenv("WANDB_PROJECT", "proj")
  monkeypatch.setenv("WANDB_RUN_ID", "")
  _Recorded.started = []
  agent = wandb_agent.Agent(api=None, queue=None, sweep_id="sw1")
  agent._sweep_command = list(sweep_yaml["command"])
  for run_id, params in runs:
    agent._command_run({"type": "run", "run_id": run_id, "program": sweep_yaml["program"],
                        "args": {k: {"value": v} for k, v in params.items()}})
  return _Recorded.started


def test_wandb_sweep_runs_get_their_own_run_directories(tmp_path, monkeypatch):
  doc = yaml.safe_load(launchers.wandb_sweep({**SWEEP, "workdir": "runs/ws"}, project="proj"))
  assert doc["parameters"]["peft.r"] == {"values": [4, 8]} and doc["parameters"]["seed"] == {"values": [0, 1]}
  assert doc["project"] == "proj" and doc["method"] == "grid"
  started = agent_commands(doc, [("run1", {"peft.r": 4, "optimizer.lr": 0.001, "seed": 0}),
                                 ("run2", {"peft.r": 8, "optimizer.lr": 0.003, "seed": 1})], tmp_path, monkeypatch)
  mains = []
  for (command, env), run_id in zip(started, ("run1", "run2")):
    assert command[1:4] == ["python", "-m", "launch.wandb_entry"] and env["WANDB_RUN_ID"] == run_id
    mains.append(wandb_entry.main_command(command[4:], env, python="python"))
  assert [a for a in mains[0] if a.startswith("--workdir=")] == ["--workdir=runs/ws/wandb/run1"]
  assert [a for a in mains[1] if a.startswith("--workdir=")] == ["--workdir=runs/ws/wandb/run2"]
  assert {"--config.peft.r=4", "--config.optimizer.lr=0.001", "--config.seed=0", "--config.wandb.mode=online",
          "--config.wandb.project=proj", "--config=configs/quickstart.py"} <= set(mains[0])
  assert {"--config.peft.r=8", "--config.optimizer.lr=0.003", "--config.seed=1"} <= set(mains[1])
  check_config(mains[1])  # every key is a real config key


def test_wandb_sweep_list_entries_with_several_keys(tmp_path, monkeypatch):
  sweep = {"config": "configs/quickstart.py", "grid": {"peft.r": [4]},
           "list": [{"seed": 0, "optimizer.lr": 0.01}, {"seed": 1, "optimizer.lr": 0.02}]}
  doc = yaml.safe_load(launchers.wandb_sweep(sweep))
  values = doc["parameters"]["sweep_list"]["values"]
  assert len(values) == 2
  ((command, env),) = agent_commands(doc, [("r9", {"peft.r": 4, "sweep_list": values[1]})], tmp_path, monkeypatch)
  cmd = wandb_entry.main_command(command[4:], env)
  assert {"--config.seed=1", "--config.optimizer.lr=0.02", "--config.peft.r=4",
          "--workdir=runs/quickstart_sweep/wandb/r9"} <= set(cmd)


def test_wandb_entry_writes_the_run_id_for_the_logger_and_execs_main(tmp_path, monkeypatch):
  ran = []
  monkeypatch.setattr(wandb_entry.os, "execv", lambda path, argv: ran.append(argv))
  monkeypatch.setenv("WANDB_RUN_ID", "abc123")
  wandb_entry.main(["--config=configs/quickstart.py", f"--root={tmp_path}", "seed=2"])
  assert (tmp_path / "abc123" / "wandb_id.txt").read_text() == "abc123"
  assert ran[0][:3] == [sys.executable, "-m", "lightft_jax.main"] and "--config.seed=2" in ran[0]
  monkeypatch.delenv("WANDB_RUN_ID")
  with pytest.raises(SystemExit, match="WANDB_RUN_ID"):
    wandb_entry.main_command(["--config=c.py", "--root=r"], {})


def test_best_row_is_the_highest_mean_among_the_matching_rows():
  from launch.aggregate import best_row
  s = {"rows": [{"peft.method": "lora", "optimizer.lr": lr, "eval/accuracy_mean": acc}
                for lr, acc in ((1e-3, 0.7), (3e-3, 0.8), (1e-2, 0.75))] +
       [{"peft.method": "ia3", "optimizer.lr": 1e-2, "eval/accuracy_mean": 0.9}], "command": "c"}
  assert best_row(s, "eval/accuracy", {"peft.method": "lora"})["optimizer.lr"] == 3e-3
  assert best_row(s, "eval/accuracy")["peft.method"] == "ia3"
  with pytest.raises(SystemExit, match="no rows with {'peft.method': 'dora'}"):
    best_row(s, "eval/accuracy", {"peft.method": "dora"})
