"""Sweeps: a file beside a config (configs/NAME_sweep.py) with `get_sweep()` -> dict:

  {"config": "configs/quickstart.py", "workdir": "runs/sweep",   # workdir root; one folder per point
   "grid": {"optimizer.lr": [1e-3, 3e-3], "peft.r": [4, 8]},      # cartesian product
   "list": [{"seed": 0}, {"seed": 1}]}                             # optional: each grid point x each entry

The key "arg" in a grid or list entry is not a config key but the config file's argument: the point runs
`--config=CONFIG:ARG` (joined with "," to an argument CONFIG already has), e.g. {"arg": ["method=lora",
"method=ia3"]} for configs whose `get_config(arg)` picks the method.

`expand(sweep)` gives one `Point(name, overrides, workdir, command)` per point, where `command` is the
`python -m lightft_jax.main ...` line with `--config.KEY=VALUE` overrides and the point's own workdir.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import itertools
import json
import re
import shlex
from pathlib import Path
from typing import Any


@dataclasses.dataclass(frozen=True)
class Point:
  name: str
  overrides: dict[str, Any]
  workdir: str
  command: str


def load_file(path: str | Path, name: str = "_sweep"):
  """The Python file at `path` as a module (sweep files, and the paper-sized sweep a CPU-sized one builds on)."""
  spec = importlib.util.spec_from_file_location(name, path)
  if spec is None or not Path(path).is_file():
    raise FileNotFoundError(f"no sweep file at {path}")
  mod = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(mod)
  return mod


def load_sweep(path: str | Path) -> dict:
  mod = load_file(path)
  if not hasattr(mod, "get_sweep"):
    raise ValueError(f"{path} has no get_sweep() function")
  return mod.get_sweep()


def _slug(overrides: dict[str, Any]) -> str:
  text = {k: "+".join(map(str, v)) if isinstance(v, (list, tuple)) else str(v) for k, v in overrides.items()}
  parts = [v if k == "arg" else f"{k.split('.')[-1]}={v}" for k, v in text.items()]
  return re.sub(r"[^A-Za-z0-9_.=+-]", "_", ",".join(parts)) or "base"


def command(config: str, workdir: str, overrides: dict[str, Any], python: str = "python") -> str:
  args = [python, "-m", "lightft_jax.main", f"--config={config}", f"--workdir={workdir}"]
  args += [f"--config.{k}={v}" for k, v in overrides.items()]
  return " ".join(shlex.quote(a) for a in args)


def root(sweep: dict) -> str:
  """The sweep's workdir root: `workdir`, else runs/<config name>_sweep."""
  return sweep.get("workdir") or f"runs/{Path(sweep['config'].split(':')[0]).stem}_sweep"


def expand(sweep: dict, python: str = "python", workdir_root: str | None = None) -> list[Point]:
  """Grid (cartesian product, keys in file order) x list entries -> points with unique workdirs
  (under `workdir_root` when given, else the sweep's root)."""
  unknown = set(sweep) - {"config", "workdir", "grid", "list", "name"}
  if unknown or "config" not in sweep:
    raise ValueError(f"a sweep has keys config (required), workdir, grid, list, name; got {sorted(sweep)}")
  grid = dict(sweep.get("grid") or {})
  for k, v in grid.items():
    if not isinstance(v, (list, tuple)) or not v:
      raise ValueError(f"sweep grid values must be non-empty lists; {k!r} is {v!r}")
  combos = [dict(zip(grid, vals)) for vals in itertools.product(*grid.values())]
  entries = list(sweep.get("list") or [{}])
  base = workdir_root or root(sweep)
  all_overrides = [{**combo, **entry} for combo, entry in itertools.product(combos, entries)]
  varying = [k for k in dict.fromkeys(k for o in all_overrides for k in o)
             if len({repr(o.get(k)) for o in all_overrides}) > 1]  # what tells the points apart names them
  points = []
  for overrides in all_overrides:
    name = _slug({k: overrides[k] for k in varying if k in overrides})
    wd = f"{base}/{name}"
    config = sweep["config"]
    if "arg" in overrides:
      arg = overrides.pop("arg")
      config = f"{config},{arg}" if ":" in config else f"{config}:{arg}"
    points.append(Point(name, overrides, wd, command(config, wd, overrides, python)))
  if len({p.name for p in points}) != len(points):
    raise ValueError("sweep points are not unique; check grid and list for duplicates")
  return points


FINISHED = ("completed", "early_stopped")  # results.json statuses of runs that reached their end
COMMAND_FILE = "command.txt"  # lightft_jax.main writes it once, into the run directory it starts


def run_args(command: str) -> list[str]:
  """A `python -m lightft_jax.main ...` command's arguments that define the run: after the module name, without
  `--workdir` (the directory is the run's identity already; roots differ between machines and launchers)."""
  args = shlex.split(command)
  if "lightft_jax.main" in args:
    args = args[args.index("lightft_jax.main") + 1:]
  return [a for a in args if not a.startswith("--workdir=")]


def started_by(workdir: str | Path) -> str | None:
  """The command that started the run in `workdir` (its COMMAND_FILE), or None for a run that did not record one."""
  f = Path(workdir) / COMMAND_FILE
  return f.read_text().strip() if f.is_file() else None


def run_status(workdir: str | Path) -> str:
  """"completed" / "early_stopped" / "preempted" / "diverged" from DIR/results.json; "started" if the directory exists
  without one (an interrupted run: re-running its command resumes it); "new" otherwise."""
  wd = Path(workdir)
  res = wd / "results.json"
  if res.is_file():
    try:
      return str(json.loads(res.read_text()).get("status", "unknown"))
    except json.JSONDecodeError:
      return "unreadable"
  return "started" if wd.exists() else "new"
