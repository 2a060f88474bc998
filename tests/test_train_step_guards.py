"""The jitted steps themselves: a non-finite step is not applied, and the MoE balancing loss is a training term."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from flax import nnx

from lightft_jax import peft
from lightft_jax.models import Transformer, get_preset
from lightft_jax.train import config_lib, losses, optim, sharding as shd, steps

CFG = get_preset("tiny-gpt2", d_model=32, n_heads=2, d_ff=64, vocab_size=64, max_positions=32, n_layers=1)


def _program(model, filt, tx):
  mesh = shd.make_mesh(1, 1, 1, devices=jax.devices()[:1])
  prog = steps.build_program(model, filt, tx, kind="lm", mesh=mesh)
  return prog, mesh


def _batch(seed: int, weights=None):
  ids = np.random.default_rng(seed).integers(0, 64, (2, 8)).astype(np.int32)
  batch = {"input_ids": ids, "attention_mask": np.ones_like(ids), "labels": np.roll(ids, -1, 1)}
  if weights is not None:
    batch["weights"] = np.asarray(weights, np.float32)
  return batch


def test_a_nonfinite_step_keeps_params_and_optimizer_state_and_training_continues():
  model = Transformer(CFG, task="lm", rngs=nnx.Rngs(0))
  prog, mesh = _program(model, nnx.Param, optax.adam(1e-2))
  state = steps.init_state(prog, 0)
  frozen, rest = steps.place_frozen(prog)
  host = lambda s: jax.tree.map(np.asarray, s)
  run = lambda s, b: prog.train_step(s, frozen, rest, shd.global_batch(b, mesh))

  state, m = run(state, _batch(0))
  assert bool(m["ok"]) and np.isfinite(float(m["loss"]))
  before = host(state)
  state, m = run(state, _batch(1, weights=[np.nan, 1.0]))  # a NaN example weight: NaN loss and gradients
  assert not bool(m["ok"]) and np.isnan(float(m["loss"]))
  after = host(state)
  assert int(after["step"]) == int(before["step"]) + 1
  for key in ("params", "opt_state", "rng"):
    for a, b in zip(jax.tree.leaves(before[key]), jax.tree.leaves(after[key])):
      np.testing.assert_array_equal(a, b)
  state, m = run(state, _batch(2))
  assert bool(m["ok"])
  final = host(state)
  moved = [np.abs(a - b).max() for a, b in zip(jax.tree.leaves(after["params"]), jax.tree.leaves(final["params"]))]
  assert max(moved) > 0 and all(np.isfinite(x).all() for x in jax.tree.leaves(final))


def test_a_finite_loss_with_a_nonfinite_update_is_not_applied():
  model = Transformer(CFG, task="lm", rngs=nnx.Rngs(0))
  prog, mesh = _program(model, nnx.Param, optax.sgd(float("inf")))  # finite loss and gradients, inf update
  state = steps.init_state(prog, 0)
  frozen, rest = steps.place_frozen(prog)
  before = jax.tree.map(np.asarray, state["params"])
  state, m = prog.train_step(state, frozen, rest, shd.global_batch(_batch(0), mesh))
  assert np.isfinite(float(m["loss"])) and np.isfinite(float(m["grad_norm"])) and not bool(m["ok"])
  for a, b in zip(jax.tree.leaves(before), jax.tree.leaves(state["params"])):
    np.testing.assert_array_equal(a, np.asarray(b))


def test_moe_balancing_loss_joins_the_train_loss_but_not_the_eval_loss():
  model = Transformer(CFG, task="lm", rngs=nnx.Rngs(0))
  peft.apply(model, ml_collections.ConfigDict(
      {"method": "moe_lora", "router": "token", "n_experts": 4, "top_k": 1, "aux_loss_coef": 1.0}))
  filt = peft.trainable_filter(model)
  cfg = config_lib.base_config()
  tx = optim.make_optimizer(cfg.optimizer, cfg.schedule, nnx.to_pure_dict(nnx.state(model, filt)), 2)
  batch = _batch(0)
  model.eval()
  task_loss, _ = losses.loss_and_predictions("lm", model(jnp.asarray(batch["input_ids"])), batch)
  aux = sum(jnp.sum(v) for v in jax.tree.leaves(nnx.pop(model, nnx.Intermediate)))
  assert float(aux) > 0.1  # large enough that adding it would show
  prog, mesh = _program(model, filt, tx)
  state = steps.init_state(prog, 0)
  frozen, rest = steps.place_frozen(prog)
  out = prog.eval_step(state["params"], frozen, rest, shd.global_batch(batch, mesh))
  np.testing.assert_allclose(float(out["loss_sum"] / out["weight"]), float(task_loss), rtol=1e-5)
  _, metrics = prog.train_step(state, frozen, rest, shd.global_batch(batch, mesh))
  np.testing.assert_allclose(float(metrics["loss"]), float(task_loss + aux), rtol=1e-5)
