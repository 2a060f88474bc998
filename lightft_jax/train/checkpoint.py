"""Orbax checkpoints of the train state, the data iterator state and run metadata.

Only the train state (trainable parameters, optimizer state, step, RNG) is saved; frozen base weights are
rebuilt from the reference stored in `meta` (model name or HF directory, PEFT config), so PEFT checkpoints
are small. `restore_latest` walks back from the newest step when one fails to load (corrupted or partial)
and warns. A second manager under `best/` keeps the best step by an eval metric.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import jax
import orbax.checkpoint as ocp

log = logging.getLogger(__name__)


def _args(state: Any, loader: dict | None, meta: dict) -> ocp.args.Composite:
  return ocp.args.Composite(state=ocp.args.StandardSave(state), loader=ocp.args.JsonSave(loader or {}),
                            meta=ocp.args.JsonSave(meta))


class Checkpointer:
  """CheckpointManager for `directory` (+ `directory/../best` when `best_mode` is set)."""

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

  def restore_latest(self, abstract_state: Any) -> tuple[int, Any, dict, dict] | None:
    """(step, state, loader state, meta) of the newest loadable step, or None if there is none.

    `abstract_state` is a pytree of jax.ShapeDtypeStruct with shardings (the target layout).
    """
    for step in reversed(self.steps()):
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
