"""Entry point: python -m lightft_jax.main --config=configs/NAME.py[:ARG] --workdir=DIR [--config.a.b=value ...]

Loads the config (`train.config_lib.load_config`: the file's `get_config(ARG)`, then each `--config.KEY=VALUE`
override, typed as the file set it; a misspelled key fails before anything runs, naming the nearest valid
keys) and runs its job (`lightft_jax.jobs`: `train` by default, `icl_eval`). Re-running the same command on
an existing workdir resumes. A training config with `baselines` (tuple of (name, {dotted key: value})) also
runs each baseline under DIR/baselines/NAME and writes a comparison table (DIR/comparison.md, .json).
"""

from __future__ import annotations

import logging
import shlex
import sys
from pathlib import Path

from absl import app, flags

_CONFIG = flags.DEFINE_string("config", None, "Path to a config file, optionally `:ARG`.")
_WORKDIR = flags.DEFINE_string("workdir", None, "Run directory (created; an existing one is resumed).")
flags.mark_flags_as_required(["config", "workdir"])

_OVERRIDES: list[tuple[str, str]] = []


def split_overrides(argv: list[str]) -> tuple[list[str], list[tuple[str, str]]]:
  """(argv without the `--config.KEY=VALUE` flags, [(KEY, VALUE), ...])."""
  rest, overrides = [], []
  for a in argv:
    if a.startswith("--config."):
      key, eq, value = a[len("--config."):].partition("=")
      if not eq:
        raise app.UsageError(f"{a!r}: write config overrides as --config.KEY=VALUE")
      overrides.append((key, value))
    else:
      rest.append(a)
  return rest, overrides


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  logging.getLogger("absl").setLevel(logging.WARNING)
  from lightft_jax import jobs
  from lightft_jax.train import config_lib
  try:
    config = config_lib.load_config(_CONFIG.value, _OVERRIDES)
  except (KeyError, ValueError, FileNotFoundError) as e:
    sys.exit(f"error: {e.args[0] if isinstance(e, KeyError) else e}")
  record_command(_WORKDIR.value, sys.argv[1:])
  jobs.run_job(config, _WORKDIR.value)


def record_command(workdir: str, args: list[str]) -> None:
  """Writes WORKDIR/command.txt, the command that started the run, once: a resume keeps the first (the
  launcher compares it with a sweep point before skipping that point's finished run)."""
  path = Path(workdir) / "command.txt"
  path.parent.mkdir(parents=True, exist_ok=True)
  try:
    with path.open("x") as f:
      f.write(shlex.join(["python", "-m", "lightft_jax.main", *args]) + "\n")
  except FileExistsError:
    pass


def run():
  argv, overrides = split_overrides(sys.argv)
  _OVERRIDES[:] = overrides
  app.run(main, argv=argv)


if __name__ == "__main__":
  run()
