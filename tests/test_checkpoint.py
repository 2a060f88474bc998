"""Orbax checkpointer: round trip, fallback from a corrupted latest step, keep-best."""

import logging
import shutil

import jax
import jax.numpy as jnp
import numpy as np

from lightft_jax.train.checkpoint import Checkpointer, abstract_like


def state(v: float):
  return {"step": jnp.array(int(v), jnp.int32), "params": {"w": jnp.full((4, 3), v), "b": jnp.full((3,), -v)},
          "rng": jax.random.PRNGKey(0)}


def test_round_trip_with_loader_state_and_meta(tmp_path):
  ck = Checkpointer(tmp_path / "checkpoints", async_save=True)
  ck.save(3, state(3.0), {"epoch": 0, "index": 24}, {"base_model": "tiny-bert"})
  ck.wait()
  step, st, loader, meta = ck.restore_latest(abstract_like(state(0.0)))
  assert step == 3 and loader == {"epoch": 0, "index": 24} and meta == {"base_model": "tiny-bert"}
  jax.tree.map(np.testing.assert_array_equal, st, state(3.0))  # every leaf: step, params, rng
  assert st["step"].dtype == jnp.int32 and st["rng"].dtype == jax.random.PRNGKey(0).dtype
  assert ck.save(3, state(4.0), {}, {}) is False  # a step is written once
  ck.close()
  # A fresh manager on the same directory (what a resumed run opens) finds the same step and values.
  again = Checkpointer(tmp_path / "checkpoints", async_save=False)
  assert again.steps() == [3]
  step2, st2, loader2, meta2 = again.restore_latest(abstract_like(state(0.0)))
  assert (step2, loader2, meta2) == (3, {"epoch": 0, "index": 24}, {"base_model": "tiny-bert"})
  jax.tree.map(np.testing.assert_array_equal, st2, state(3.0))
  again.close()


def test_corrupted_latest_falls_back_to_previous(tmp_path, caplog):
  ck = Checkpointer(tmp_path / "checkpoints", max_to_keep=3, async_save=False)
  for s in (1, 2):
    ck.save(s, state(float(s)), {}, {})
  ck.wait()
  shutil.rmtree(tmp_path / "checkpoints" / "2" / "state")  # a partial / damaged latest step
  with caplog.at_level(logging.WARNING):
    step, st, _, _ = ck.restore_latest(abstract_like(state(0.0)))
  assert step == 1 and float(st["params"]["w"][0, 0]) == 1.0
  assert "step 2" in caplog.text and "previous" in caplog.text
  ck.close()


def test_nothing_to_restore_and_keep_best(tmp_path):
  ck = Checkpointer(tmp_path / "checkpoints", async_save=False, best_mode="max")
  assert ck.restore_latest(abstract_like(state(0.0))) is None
  for s, metric in ((1, 0.5), (2, 0.9), (3, 0.7)):
    ck.save_best(s, state(float(s)), {}, {}, metric)
  ck.wait()
  assert ck.best.all_steps() == [2]
  ck.close()
