"""Optimizers, schedules, per-group learning rates and weight-decay masks."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from lightft_jax.train import config_lib, optim

PARAMS = {"encoder": {"attn": {"kernel": jnp.ones((4, 3)), "bias": jnp.ones((3,))},
                      "norm": {"scale": jnp.ones((3,))}},
          "head": {"out": {"kernel": jnp.ones((3, 2))}}}



def test_warmup_then_cosine_and_linear():
  c = config_lib.base_config()
  c.schedule.warmup_steps = 10
  s = optim.make_schedule(c.schedule, 1.0, 110)
  assert float(s(0)) == 0.0 and float(s(5)) == pytest.approx(0.5)
  assert float(s(10)) == pytest.approx(1.0)
  assert float(s(60)) == pytest.approx(0.5 * (1 + np.cos(np.pi * 0.5)), abs=1e-6)
  assert float(s(110)) == pytest.approx(0.0, abs=1e-6)
  c.schedule.name, c.schedule.end_factor = "linear", 0.1
  s = optim.make_schedule(c.schedule, 2.0, 110)
  assert float(s(60)) == pytest.approx(2.0 - 0.5 * 1.8)
  c.schedule.name = "constant"
  assert float(optim.make_schedule(c.schedule, 2.0, 110)(99)) == pytest.approx(2.0)
  c.schedule.name = "exp"
  with pytest.raises(ValueError, match="cosine"):
    optim.make_schedule(c.schedule, 1.0, 10)


def test_decay_mask_excludes_norms_and_biases():
  c = config_lib.base_config()
  mask = optim.decay_mask(PARAMS, c.optimizer.no_decay)
  assert mask == {"encoder": {"attn": {"kernel": True, "bias": False}, "norm": {"scale": False}},
                  "head": {"out": {"kernel": True}}}


def test_lr_groups_scale_updates_per_regex():
  c = config_lib.base_config()
  c.optimizer.name, c.optimizer.momentum, c.optimizer.clip_norm = "sgd", 0.0, 0.0
  c.optimizer.lr, c.schedule.name = 0.1, "constant"
  c.optimizer.lr_groups = ((r"^head\.", 10.0), (r"norm", 0.0))
  tx = optim.make_optimizer(c.optimizer, c.schedule, PARAMS, 10)
  grads = jax.tree.map(jnp.ones_like, PARAMS)
  upd, _ = tx.update(grads, tx.init(PARAMS), PARAMS)
  np.testing.assert_allclose(upd["encoder"]["attn"]["kernel"], -0.1)
  np.testing.assert_allclose(upd["head"]["out"]["kernel"], -1.0)
  np.testing.assert_allclose(upd["encoder"]["norm"]["scale"], 0.0)


def test_weight_decay_only_on_masked_params():
  c = config_lib.base_config()
  c.optimizer.name, c.optimizer.momentum, c.optimizer.clip_norm = "sgd", 0.0, 0.0
  c.optimizer.lr, c.optimizer.weight_decay, c.schedule.name = 1.0, 0.5, "constant"
  tx = optim.make_optimizer(c.optimizer, c.schedule, PARAMS, 10)
  zero = jax.tree.map(jnp.zeros_like, PARAMS)
  upd, _ = tx.update(zero, tx.init(PARAMS), PARAMS)
  np.testing.assert_allclose(upd["encoder"]["attn"]["kernel"], -0.5)
  np.testing.assert_allclose(upd["encoder"]["attn"]["bias"], 0.0)


def test_clipping_bounds_the_global_norm():
  c = config_lib.base_config()
  c.optimizer.name, c.optimizer.momentum, c.optimizer.clip_norm = "sgd", 0.0, 1.0
  c.optimizer.lr, c.schedule.name = 1.0, "constant"
  tx = optim.make_optimizer(c.optimizer, c.schedule, PARAMS, 10)
  big = jax.tree.map(lambda x: 100 * jnp.ones_like(x), PARAMS)
  upd, _ = tx.update(big, tx.init(PARAMS), PARAMS)
  assert float(optax.global_norm(upd)) == pytest.approx(1.0, rel=1e-5)


@pytest.mark.parametrize("name", optim.OPTIMIZERS)
def test_every_optimizer_minimises_a_quadratic(name):
  c = config_lib.base_config()
  c.optimizer.name, c.optimizer.lr, c.schedule.name = name, 0.05, "constant"
  target = jax.tree.map(lambda x: 0.5 * x, PARAMS)
  loss = lambda p: sum(jnp.sum((a - b) ** 2) for a, b in zip(jax.tree.leaves(p), jax.tree.leaves(target)))
  tx = optim.make_optimizer(c.optimizer, c.schedule, PARAMS, 100)
  p, s = PARAMS, tx.init(PARAMS)
  for _ in range(30):
    u, s = tx.update(jax.grad(loss)(p), s, p)
    p = optax.apply_updates(p, u)
  assert float(loss(p)) < 0.5 * float(loss(PARAMS))


def test_unknown_optimizer_is_a_clear_error():
  c = config_lib.base_config()
  c.optimizer.name = "adam2"
  with pytest.raises(ValueError, match="adamw"):
    optim.make_optimizer(c.optimizer, c.schedule, PARAMS, 10)
