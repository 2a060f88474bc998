"""Entry point: python -m lightft_jax.main --config=configs/NAME.py[:ARG] --workdir=DIR [--config.a.b=value ...]

Runs `train.train(config, workdir)`; re-running the same command on an existing workdir resumes. A config
with `baselines` (tuple of (name, {dotted key: value})) also runs each baseline under DIR/baselines/NAME and
prints and writes a comparison table (DIR/comparison.md, DIR/comparison.json).
"""

from __future__ import annotations

import importlib.util
import logging
import sys

from absl import app, flags
from ml_collections import config_flags

from lightft_jax.train import config_lib

_CONFIG = config_flags.DEFINE_config_file("config", None, "Path to a config file, optionally `:ARG`.",
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Run directory (created; an existing one is resumed).")
flags.mark_flags_as_required(["config", "workdir"])


def check_overrides(argv: list[str]) -> None:
  """Fails early, with the nearest valid keys, on a misspelled `--config.KEY=` flag."""
  spec = next((a.split("=", 1)[1] for a in argv if a.startswith("--config=")), None)
  keys = [a[len("--config."):].split("=", 1)[0] for a in argv if a.startswith("--config.")]
  if spec is None or not keys:
    return
  path, _, arg = spec.partition(":")
  module_spec = importlib.util.spec_from_file_location("_checked_config", path)
  if module_spec is None:
    return
  module = importlib.util.module_from_spec(module_spec)
  module_spec.loader.exec_module(module)
  cfg = module.get_config(arg or None) if arg else module.get_config()
  open_sections = ("peft", "model.overrides", "task.options")
  for key in keys:
    if not any(key.startswith(s + ".") for s in open_sections):
      config_lib.check_key(cfg, key)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  logging.getLogger("absl").setLevel(logging.WARNING)
  job = _CONFIG.value.get("job", "train")
  if job in ("icl_eval", "icl_regression"):  # in-context-learning jobs: lightft_jax.icl.run_<job>(config, workdir)
    from lightft_jax import icl
    getattr(icl, f"run_{job}")(_CONFIG.value, _WORKDIR.value)
    return
  from lightft_jax.train.compare import run_with_baselines
  run_with_baselines(_CONFIG.value, _WORKDIR.value)


def run():
  try:
    check_overrides(sys.argv[1:])
  except KeyError as e:
    sys.exit(f"error: {e.args[0]}")
  app.run(main)


if __name__ == "__main__":
  run()
