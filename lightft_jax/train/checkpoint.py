"""Orbax checkpoints of the train state, the data iterator state and run metadata.

Only the train state (trainable parameters, optimizer state, step, RNG) is saved, so PEFT checkpoints are
small; frozen base weights are not: a resume rebuilds them from the run's config. That is only the same
model when the config is, so `meta["config"]` records every key that defines the trained state
(`state_config`) and `check_resume` refuses a resume whose config differs in any of them, listing the
keys (old -> new). Keys in `RESUME_SAFE` may change: cadence, logging, W&B, checkpoint retention, the
evaluation limit and batch size, the mesh and process layout (the same computation, resharded), and
`total_steps`. Changing `total_steps` under a decaying schedule (cosine, linear) is allowed with a warning:
the schedule is a function of `total_steps`, so from the resumed step on the learning rate follows the new
schedule, and the run matches neither an uninterrupted run of the old length nor one of the new length.

`restore_latest` walks back from the newest step when one fails to load (corrupted or partial) and warns.
A second manager under `best_checkpoint/` (beside `directory`) keeps the best step by an eval metric.
"""

from __future__ import annotations

import fnmatch
import json
import logging
from pathlib import Path
from typing import Any, Callable

import jax
import ml_collections
import orbax.checkpoint as ocp

from lightft_jax.train import config_lib

log = logging.getLogger(__name__)

# Config keys (fnmatch patterns over dotted keys) that do not define the trained state.
RESUME_SAFE = ("total_steps", "epochs", "log_every", "eval_every", "checkpoint_every", "baselines", "train.skip_nonfinite",
               "checkpoint.*", "eval.batch_size", "eval.max_new_tokens", "eval.at_start", "eval.patience", "eval.report_every_eval", "samples.*", "task.eval_limit", "task.test_split",
               "logging.*", "wandb.*", "mesh.*", "distributed.*")


class ResumeMismatch(ValueError):
  """The config differs from the checkpoint's in keys that define the trained state."""


def state_config(cfg: ml_collections.ConfigDict) -> dict[str, Any]:
  """{dotted key: value} of every config key outside `RESUME_SAFE`, as JSON values (tuples become lists)."""
  flat = config_lib.flatten(cfg.to_dict())
  kept = {k: v for k, v in flat.items() if not any(fnmatch.fnmatchcase(k, p) for p in RESUME_SAFE)}
  return json.loads(json.dumps(kept, allow_nan=False))


def check_resume(meta: dict, cfg: ml_collections.ConfigDict) -> None:
  """Raises ResumeMismatch listing `key: old -> new` for every state-defining key that changed since the
  checkpoint with `meta` was written; warns when `total_steps` changed under a decaying schedule."""
  if "config" not in meta:
    log.warning("checkpoint at step %s has no recorded config (written before resumes were checked); "
                "resuming without checking the config", meta.get("step"))
    return
  old, new = meta["config"], state_config(cfg)
  show = lambda d, k: json.dumps(d[k]) if k in d else "<absent>"
  defaults = state_config(config_lib.base_config())  # a key added to the schema since, at its default, is no change
  changed = [f"{k}: {show(old, k)} -> {show(new, k)}" for k in sorted(set(old) | set(new))
             if (k not in old and not (k in defaults and new[k] == defaults[k])) or
             (k in old and (k not in new or old[k] != new[k]))]
  if changed:
    raise ResumeMismatch(f"cannot resume from the checkpoint at step {meta.get('step')}: the config changed in "
                         f"keys that define the trained state:\n  " + "\n  ".join(changed) +
                         "\nUse a new workdir, or restore these values.")
  old_total = meta.get("total_steps", cfg.total_steps)
  if old_total != cfg.total_steps and cfg.schedule.name != "constant":
    log.warning("total_steps changed from %d to %d on resume at step %s: the %s learning-rate schedule follows "
                "the new length from here on, so this run matches no uninterrupted run", old_total,
                cfg.total_steps, meta.get("step"), cfg.schedule.name)


def _args(state: Any, loader: dict | None, meta: dict) -> ocp.args.Composite:
  return ocp.args.Composite(state=ocp.args.StandardSave(state), loader=ocp.args.JsonSave(loader or {}),
                            meta=ocp.args.JsonSave(meta))


class Checkpointer:
  """CheckpointManager for `directory` (+ `directory/../best_checkpoint` when `best_mode` is set)."""

  def __init__(self, directory: str | Path, *, max_to_keep: int = 2, async_save: bool = True,
               best_mode: str | None = None):
    self.directory = Path(directory).absolute()
    opts = ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True,
                                        enable_async_checkpointing=async_save)
    self.manager = ocp.CheckpointManager(self.directory, options=opts, item_names=("state", "loader", "meta"))
    self.best = None
    if best_mode is not None:
      if best_mode not in ("max", "min"):
        raise ValueError(f"eval.mode must be 'max' or 'min', got {best_mode!r}")
      best_opts = ocp.CheckpointManagerOptions(max_to_keep=1, create=True, best_fn=lambda m: m["metric"],
                                               best_mode=best_mode, enable_async_checkpointing=async_save)
      self.best = ocp.CheckpointManager(self.directory.parent / "best_checkpoint", options=best_opts,
                                        item_names=("state", "loader", "meta"))

  def save(self, step: int, state: Any, loader: dict | None, meta: dict, *, force: bool = False) -> bool:
    """Saves `state` (a pytree of arrays), the loader state and metadata at `step` (async)."""
    if step in self.manager.all_steps():
      return False
    return self.manager.save(step, args=_args(state, loader, meta), force=force)

  def save_best(self, step: int, state: Any, loader: dict | None, meta: dict, metric: float) -> None:
    if self.best is not None and step not in self.best.all_steps():
      self.best.save(step, args=_args(state, loader, meta), metrics={"metric": float(metric)}, force=True)

  def steps(self) -> list[int]:
    return sorted(self.manager.all_steps())

  def restore_latest(self, abstract_state: Any, check_meta: Callable[[dict], None] | None = None
                     ) -> tuple[int, Any, dict, dict] | None:
    """(step, state, loader state, meta) of the newest loadable step, or None if there is none.

    `abstract_state` is a pytree of jax.ShapeDtypeStruct with shardings (the target layout). `check_meta`
    sees a step's meta before its state is read; what it raises propagates (it is not a damaged step).
    """
    for step in reversed(self.steps()):
      if check_meta is not None:
        try:
          meta = self.manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"]
        except Exception as e:  # noqa: BLE001 - an unreadable step: fall back to the previous one
          log.warning("checkpoint metadata at step %d in %s could not be read (%s: %s); trying the previous one",
                      step, self.directory, type(e).__name__, str(e).splitlines()[0][:200])
          continue
        check_meta(dict(meta or {}))
      try:
        out = self.manager.restore(step, args=ocp.args.Composite(
            state=ocp.args.StandardRestore(abstract_state), loader=ocp.args.JsonRestore(),
            meta=ocp.args.JsonRestore()))
        return step, out["state"], dict(out["loader"] or {}), dict(out["meta"] or {})
      except Exception as e:  # noqa: BLE001 - any failure to read a step means: fall back to the previous one
        log.warning("checkpoint at step %d in %s could not be restored (%s: %s); trying the previous one",
                    step, self.directory, type(e).__name__, str(e).splitlines()[0][:200])
    return None

  def wait(self) -> None:
    self.manager.wait_until_finished()
    if self.best is not None:
      self.best.wait_until_finished()

  def close(self) -> None:
    self.manager.close()
    if self.best is not None:
      self.best.close()


def abstract_like(state: Any) -> Any:
  """ShapeDtypeStructs (with shardings) of a placed pytree, as a restore target."""
  return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding), state)
