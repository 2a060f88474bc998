"""Sweep expansion and the launcher scripts' content (they cannot be submitted here)."""

import shlex
from pathlib import Path

import pytest
import yaml

from launch import launchers
from launch.sweep import expand, load_sweep
from lightft_jax.train import config_lib

ROOT = Path(__file__).parent.parent
SWEEP = {"config": "configs/quickstart.py", "workdir": "runs/s", "grid": {"peft.r": [4, 8], "optimizer.lr": [1e-3, 3e-3]},
         "list": [{"seed": 0}, {"seed": 1}]}


def test_grid_times_list_gives_one_command_per_point():
  points = expand(SWEEP)
  assert len(points) == 8 and len({p.name for p in points}) == 8
  args = shlex.split(points[0].command)
  assert args[:3] == ["python", "-m", "lightft_jax.main"] and "--config=configs/quickstart.py" in args
  assert {"--config.peft.r=4", "--config.optimizer.lr=0.001", "--config.seed=0"} <= set(args)
  assert any(a.startswith("--workdir=runs/s/") for a in args)
  combos = {(p.overrides["peft.r"], p.overrides["optimizer.lr"], p.overrides["seed"]) for p in points}
  assert combos == {(r, lr, s) for r in (4, 8) for lr in (1e-3, 3e-3) for s in (0, 1)}


def test_bad_sweeps_are_clear_errors():
  with pytest.raises(ValueError, match="non-empty lists"):
    expand({"config": "c.py", "grid": {"seed": 3}})
  with pytest.raises(ValueError, match="config"):
    expand({"grid": {}})


def test_sweep_file_beside_config_expands_and_configs_accept_its_keys():
  from lightft_jax import main as entry
  points = expand(load_sweep(ROOT / "configs" / "quickstart_sweep.py"))
  assert len(points) == 6
  for p in points:  # every override names a real config key
    args = shlex.split(p.command)
    spec = next(a.split("=", 1)[1] for a in args if a.startswith("--config="))
    config_lib.load_config(spec, entry.split_overrides(args)[1])


def test_launcher_outputs():
  points = expand(SWEEP)
  assert launchers.local(points).splitlines() == [p.command for p in points]
  tpu = launchers.tpu_pod(points, tpu="pod", zone="us-central2-b").splitlines()
  assert len(tpu) == 8 and all(l.startswith("gcloud compute tpus tpu-vm ssh pod --zone=us-central2-b --worker=all")
                               for l in tpu)
  assert "lightft_jax.main" in shlex.split(tpu[0])[-1].split("=", 1)[1]
  sb = launchers.slurm(points, nodes=2)
  assert sb.startswith("#!/bin/bash\n") and "#SBATCH --array=0-7" in sb and "#SBATCH --nodes=2" in sb
  assert sb.count(";;") == 8 and "7) srun python -m lightft_jax.main" in sb
  sky = list(yaml.safe_load_all(launchers.skypilot(points)))
  assert len(sky) == 8 and sky[0]["run"] == points[0].command and sky[0]["resources"]["accelerators"]
  ws = yaml.safe_load(launchers.wandb_sweep(SWEEP))
  assert ws["method"] == "grid" and ws["parameters"]["config.peft.r"] == {"values": [4, 8]}
  assert "${args}" in ws["command"] and "--config=configs/quickstart.py" in ws["command"]
