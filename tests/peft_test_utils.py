"""Helpers shared by the PEFT tests: token ids, random parameters, a few Adam steps on the trainable part."""

from types import SimpleNamespace

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx


def tokens(b, t, seed=0):
  """Random token ids [b,t] in [3, 64)."""
  return jnp.asarray(np.random.RandomState(seed).randint(3, 64, (b, t)), jnp.int32)


def randomize(model, var_type, std=0.3, seed=1):
  """Gives every `var_type` parameter a random value (fresh generators / experts emit zero updates)."""
  state = nnx.state(model, var_type)
  leaves, tree = jax.tree.flatten(state)
  keys = jax.random.split(jax.random.key(seed), len(leaves))
  nnx.update(model, jax.tree.unflatten(tree, [std * jax.random.normal(k, x.shape) for k, x in zip(keys, leaves)]))


def adam_steps(model, ids, labels, steps: int, lr: float = 1e-2) -> SimpleNamespace:
  """`steps` Adam steps on the parameters `peft.trainable_filter` selects, cross-entropy of model(ids) logits
  [B, n] against `labels`; the model is updated in place. Returns trainable / frozen (after), opt_state, the
  losses and the last step's gradients."""
  from lightft_jax import peft
  graphdef, trainable, frozen, rest = nnx.split(model, peft.trainable_filter(model), nnx.Param, ...)
  opt = optax.adam(lr)
  opt_state = opt.init(trainable)

  def loss_fn(t):
    out = nnx.merge(graphdef, t, frozen, rest)(ids)["logits"]
    return optax.softmax_cross_entropy_with_integer_labels(out, labels).mean()

  @jax.jit
  def step(t, s):
    loss, g = jax.value_and_grad(loss_fn)(t)
    u, s = opt.update(g, s, t)
    return optax.apply_updates(t, u), s, loss, g

  losses = []
  for _ in range(steps):
    trainable, opt_state, loss, grads = step(trainable, opt_state)
    losses.append(float(loss))
  nnx.update(model, trainable)
  return SimpleNamespace(trainable=trainable, frozen=frozen, opt_state=opt_state, losses=losses, grads=grads)
