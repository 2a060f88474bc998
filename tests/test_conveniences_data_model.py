"""Training conveniences: RMSprop beside the other optimizers, dropout read from HF config.json, validation /
test splits carved out of one JSONL / CSV file, and a clear error for pickle-only (pytorch_model.bin)
checkpoint directories."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from lightft_jax.train import config_lib, optim

# ----------------------------------------------------------------------------- RMSprop

TOY = {"w": jnp.asarray([[1.0, -2.0], [0.5, 3.0]]), "b": jnp.asarray([0.3, -0.1])}
X = jnp.asarray(np.random.RandomState(0).randn(8, 2), jnp.float32)
Y = jnp.asarray(np.random.RandomState(1).randn(8, 2), jnp.float32)


def toy_loss(p):
  return jnp.mean((X @ p["w"] + p["b"] - Y) ** 2)


def run(tx, steps=25):
  params, state = TOY, tx.init(TOY)
  for _ in range(steps):
    updates, state = tx.update(jax.grad(toy_loss)(params), state, params)
    params = optax.apply_updates(params, updates)
  return params


def rmsprop_config(**kw):
  c = config_lib.base_config()
  c.optimizer.name, c.optimizer.lr, c.optimizer.clip_norm, c.optimizer.momentum = "rmsprop", 0.01, 0.0, 0.0
  c.schedule.name = "constant"
  for k, v in kw.items():
    c.optimizer[k] = v
  return c


@pytest.mark.parametrize("decay,eps,momentum,centered", [(0.9, 1e-8, 0.0, False), (0.95, 1e-6, 0.9, True)])
def test_rmsprop_is_optax_rmsprop(decay, eps, momentum, centered):
  c = rmsprop_config(decay=decay, eps=eps, momentum=momentum, centered=centered)
  ours = run(optim.make_optimizer(c.optimizer, c.schedule, TOY, 25))
  ref = run(optax.rmsprop(0.01, decay=decay, eps=eps, momentum=momentum or None, centered=centered))
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7), ours, ref)
  assert toy_loss(ours) < toy_loss(TOY)


def test_rmsprop_weight_decay_follows_the_mask_and_clipping_applies():
  c = rmsprop_config(weight_decay=0.1, clip_norm=0.5)
  ours = run(optim.make_optimizer(c.optimizer, c.schedule, TOY, 25))
  mask = optim.decay_mask(TOY, c.optimizer.no_decay)
  assert mask == {"w": True, "b": False}
  ref = run(optax.chain(optax.clip_by_global_norm(0.5), optax.add_decayed_weights(0.1, mask),
                        optax.rmsprop(0.01, decay=0.9, eps=1e-8)))
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7), ours, ref)
  tx = optim.make_optimizer(c.optimizer, c.schedule, TOY, 25)  # zero gradient: only weight decay moves
  updates, _ = tx.update(jax.tree.map(jnp.zeros_like, TOY), tx.init(TOY), TOY)
  assert np.all(np.asarray(updates["w"]) * np.asarray(TOY["w"]) < 0)  # the matrix decays towards 0 ...
  np.testing.assert_array_equal(updates["b"], 0.0)  # ... the bias does not


def test_rmsprop_in_the_optimizer_list():
  assert "rmsprop" in optim.OPTIMIZERS
  c = rmsprop_config()
  c.optimizer.name = "rmsprp"
  with pytest.raises(ValueError, match="rmsprop"):
    optim.make_optimizer(c.optimizer, c.schedule, TOY, 5)
