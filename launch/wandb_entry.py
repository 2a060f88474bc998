"""What the W&B sweep agent runs for each sweep run (the `command` of launchers.wandb_sweep's YAML):

  python -m launch.wandb_entry --config=configs/NAME.py[:ARG] --root=RUNS_ROOT KEY=VALUE ...

The agent substitutes `${args_no_hyphens}` with the run's parameters as KEY=VALUE (dotted config keys;
`sweep_list` holds a JSON object of several keys) and puts the run id in the child's WANDB_RUN_ID. Macros in the
sweep command are substituted once per agent, not per run, so the run id is read here, at run time: each run
trains in RUNS_ROOT/<run id> (a resumed W&B run resumes its own checkpoints), logs to that same W&B run
(its id goes to wandb_id.txt, which the training logger reads) in the agent's project, online.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path


def main_command(argv: list[str], environ: dict[str, str], python: str = sys.executable) -> list[str]:
  """The lightft_jax.main command line for one sweep run."""
  config = next((a.split("=", 1)[1] for a in argv if a.startswith("--config=")), "")
  root = next((a.split("=", 1)[1] for a in argv if a.startswith("--root=")), "")
  params = [a for a in argv if not a.startswith("--")]
  if not config or not root:
    raise SystemExit(f"launch.wandb_entry needs --config=... and --root=...; got {argv}")
  run_id = environ.get("WANDB_RUN_ID", "")
  if not run_id:
    raise SystemExit("WANDB_RUN_ID is not set: launch.wandb_entry runs under `wandb agent`")
  overrides: dict[str, str] = {}
  for p in params:
    key, sep, value = p.partition("=")
    if not sep:
      raise SystemExit(f"sweep parameter {p!r} is not KEY=VALUE")
    if key == "sweep_list":
      overrides.update({k: str(v) for k, v in json.loads(value).items()})
    else:
      overrides[key] = value
  cmd = [python, "-m", "lightft_jax.main", f"--config={config}", f"--workdir={root}/{run_id}",
         "--config.wandb.mode=online"]
  if environ.get("WANDB_PROJECT"):
    cmd.append(f"--config.wandb.project={environ['WANDB_PROJECT']}")
  return cmd + [f"--config.{k}={v}" for k, v in overrides.items()]


def main(argv=None) -> None:
  cmd = main_command(sys.argv[1:] if argv is None else argv, dict(os.environ))
  workdir = Path(next(a for a in cmd if a.startswith("--workdir=")).split("=", 1)[1])
  workdir.mkdir(parents=True, exist_ok=True)
  id_file = workdir / "wandb_id.txt"
  if not id_file.exists():
    id_file.write_text(os.environ["WANDB_RUN_ID"])
  print(" ".join(cmd), flush=True)
  os.execv(cmd[0], cmd)  # the agent's signals (stop, preemption) reach the training process itself


if __name__ == "__main__":
  main()
