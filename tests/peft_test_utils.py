"""Helpers shared by the conditional-PEFT tests (hypernetworks, mixtures of experts)."""

import jax
import jax.numpy as jnp
import numpy as np
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
