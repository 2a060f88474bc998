"""Jobs that `lightft_jax.main` runs, by the config's `job` key.

  train     `train.compare.run_with_baselines`: the trainer (`train.loop.train`, any `train.objective`), plus
            the config's `baselines` and their comparison table
  icl_eval  `icl.run_eval.run_icl_eval`: few-shot evaluation of a language model (no training)

A job is `fn(config, workdir) -> results`; `register_job(name, fn_or_ref)` adds one. References are
"module:attribute" strings resolved on first use, so looking up a job imports only that job's code.
"""

from __future__ import annotations

from typing import Any

from lightft_jax.kinds import Ref, resolve

_JOBS: dict[str, Ref] = {
    "train": "lightft_jax.train.compare:run_with_baselines",
    "icl_eval": "lightft_jax.icl.run_eval:run_icl_eval",
}


def register_job(name: str, fn: Ref, *, replace: bool = False) -> None:
  if name in _JOBS and not replace:
    raise ValueError(f"job {name!r} is already registered")
  _JOBS[name] = fn


def jobs() -> list[str]:
  return list(_JOBS)


def run_job(config, workdir) -> Any:
  """Runs `config.job` (default "train") on `workdir`; an unknown job lists the known ones."""
  name = config.get("job", "train")
  if name not in _JOBS:
    raise ValueError(f"unknown job {name!r}; known jobs: {jobs()}")
  return resolve(_JOBS[name])(config, workdir)
