"""Validation-only tuning runs for configs/quickstart.py (the test split is never read here).

  python -m experiments.quickstart.tune NAME=ARG [NAME=ARG ...]   # ARG: the quickstart's config argument

Each NAME trains the quickstart config `configs/quickstart.py:ARG` (or, when ARG has `method=head`, its
head-only baseline) with `task.test_split=""`, no periodic evals and the final eval on the whole validation
split, in runs/quickstart_tune/NAME, and writes experiments/quickstart/results/tune_NAME.json (the argument,
validation metrics, steps, trainable params, wall time).
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from pathlib import Path

import jax

from lightft_jax.train import compare, config_lib

OUT = Path(__file__).parent / "results"


def load_config(arg: str):
  return config_lib.config_module("configs/quickstart.py").get_config(arg)


def tune_config(arg: str):
  """The quickstart config for `arg` (its head-only baseline when arg says method=head), validation only."""
  head_only = "method=head" in arg
  cfg = load_config(",".join(a for a in arg.split(",") if a and a != "method=head"))
  if head_only:
    cfg = compare.baseline_config(cfg, dict(cfg.baselines[0][1]))
  overrides = {"task.test_split": "", "task.eval_limit": 0, "eval_every": 0, "checkpoint_every": 0,
               "baselines": (), "logging.plots": False, "logging.progress": False}
  cfg.unlock()
  for k, v in overrides.items():
    compare.config_lib.set_key(cfg, k, v)
  return cfg


def main(argv: list[str]) -> None:
  from lightft_jax.train.loop import train
  OUT.mkdir(parents=True, exist_ok=True)
  for item in argv:
    name, arg = item.split("=", 1)
    cfg = tune_config(arg)
    workdir = Path("runs/quickstart_tune") / name
    shutil.rmtree(workdir, ignore_errors=True)  # a fresh run, never a resume
    t0 = time.time()
    res = train(cfg, workdir)
    row = {"name": name, "arg": arg, "method": cfg.peft.method, "steps": cfg.total_steps,
           "batch_size": cfg.batch_size, "lr": cfg.optimizer.lr, "validation": res.get("eval"),
           "trainable_params": res["trainable_params"], "wall_time_s": round(time.time() - t0, 1),
           "device": f"{jax.device_count()} x {jax.devices()[0].device_kind}",
           "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    (OUT / f"tune_{name}.json").write_text(json.dumps(row, indent=2) + "\n")
    print("TUNE", json.dumps(row), flush=True)


if __name__ == "__main__":
  main(sys.argv[1:])
