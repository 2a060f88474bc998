"""Synthetic in-context regression tasks (Garg et al. 2022, "What Can Transformers Learn In-Context?").

Function classes: linear regression, sparse linear regression, two-layer ReLU networks, decision trees.
x, w ~ N(0, I); only the first `d` (curriculum) of `n_dims` coordinates of x are non-zero, so the array
shapes stay fixed while d grows (no recompiles). Prompt encoding: tokens [B, 2k, n_dims] interleaving
x_1, y_1, ..., x_k, y_k, where a y token is (y, 0, ..., 0); a causal model's output at the position of x_i
is its prediction of y_i from the i-1 preceding pairs (x_k is the query). Pure JAX: `sample_icl_batch`
is jittable given a key (n_points, n_dims and the function class are static).
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp

FUNCTION_CLASSES = ("linear_regression", "sparse_linear_regression", "relu_2nn", "decision_tree")


def _active(n_dims: int, d) -> jax.Array:
  """[n_dims] float mask: 1 on the first d coordinates."""
  return (jnp.arange(n_dims) < d).astype(jnp.float32)


def _linear(key, xs, d, **_):
  w = jax.random.normal(key, (xs.shape[0], xs.shape[2]))
  return jnp.einsum("bkd,bd->bk", xs, w)


def _sparse_linear(key, xs, d, sparsity: int = 3, **_):
  """w has `sparsity` non-zero N(0,1) entries, at random among the d active coordinates."""
  kw, ks = jax.random.split(key)
  b, _, n = xs.shape
  scores = jnp.where(_active(n, d) > 0, jax.random.uniform(ks, (b, n)), -1.0)
  kth = -jnp.sort(-scores, axis=-1)[:, sparsity - 1:sparsity]
  w = jax.random.normal(kw, (b, n)) * (scores >= kth) * (scores >= 0)
  return jnp.einsum("bkd,bd->bk", xs, w)


def _relu_2nn(key, xs, d, hidden: int = 100, **_):
  """y = sqrt(2 / hidden) * relu(x W1) W2, W1 [n,hidden], W2 [hidden] ~ N(0, 1)."""
  k1, k2 = jax.random.split(key)
  b, _, n = xs.shape
  w1 = jax.random.normal(k1, (b, n, hidden))
  w2 = jax.random.normal(k2, (b, hidden))
  return jnp.sqrt(2.0 / hidden) * jnp.einsum("bkh,bh->bk", jax.nn.relu(jnp.einsum("bkd,bdh->bkh", xs, w1)), w2)


def _decision_tree(key, xs, d, depth: int = 4, **_):
  """Full binary tree of `depth`: node i tests x[feature_i] > 0 (go right) with feature_i uniform over the
  d active coordinates; leaves hold N(0,1) values."""
  kf, kv = jax.random.split(key)
  b = xs.shape[0]
  n_nodes = 2 ** (depth + 1) - 1
  feature = jnp.floor(jax.random.uniform(kf, (b, n_nodes)) * d).astype(jnp.int32)
  value = jax.random.normal(kv, (b, n_nodes))
  node = jnp.zeros(xs.shape[:2], jnp.int32)
  for _ in range(depth):
    f = jnp.take_along_axis(feature, node, axis=1)
    go_right = jnp.take_along_axis(xs, f[..., None], axis=2)[..., 0] > 0
    node = 2 * node + 1 + go_right.astype(jnp.int32)
  return jnp.take_along_axis(value, node, axis=1)


_FUNCTIONS = {"linear_regression": _linear, "sparse_linear_regression": _sparse_linear,
              "relu_2nn": _relu_2nn, "decision_tree": _decision_tree}


def to_tokens(xs: jax.Array, ys: jax.Array) -> jax.Array:
  """xs [B,k,n], ys [B,k] -> tokens [B,2k,n]: x_1, (y_1,0..0), x_2, (y_2,0..0), ..."""
  y_tok = jnp.zeros_like(xs).at[..., 0].set(ys)
  return jnp.stack([xs, y_tok], axis=2).reshape(xs.shape[0], 2 * xs.shape[1], xs.shape[2])


@functools.partial(jax.jit, static_argnames=("function_class", "batch_size", "n_points", "n_dims", "sparsity",
                                             "hidden", "depth"))
def sample_icl_batch(key: jax.Array, function_class: str, *, batch_size: int, n_points: int, n_dims: int,
                     d=None, noise_std=0.0, sparsity: int = 3, hidden: int = 100, depth: int = 4) -> dict:
  """One batch of prompts. d: active dimensions (<= n_dims, may be traced; default n_dims).

  Returns xs [B,k,n] (zero beyond d), ys [B,k] (f(x) + noise_std * N(0,1)), tokens [B,2k,n],
  x_positions [k] (token index of each x_i: where the model's prediction of y_i is read).
  """
  if function_class not in _FUNCTIONS:
    raise ValueError(f"unknown function class {function_class!r}; available: {list(FUNCTION_CLASSES)}")
  d = n_dims if d is None else d
  kx, kf, kn = jax.random.split(key, 3)
  xs = jax.random.normal(kx, (batch_size, n_points, n_dims)) * _active(n_dims, d)
  ys = _FUNCTIONS[function_class](kf, xs, d, sparsity=sparsity, hidden=hidden, depth=depth)
  ys = ys + noise_std * jax.random.normal(kn, ys.shape)
  return {"xs": xs, "ys": ys, "tokens": to_tokens(xs, ys), "x_positions": 2 * jnp.arange(n_points)}


@dataclasses.dataclass(frozen=True)
class Curriculum:
  """Garg et al.'s curriculum: every `interval` steps, d grows by dims_inc (start dims_start, at most n_dims)
  and the number of in-context points by points_inc (at most points_end). Defaults: their linear
  regression run (d 5 -> 20, points 11 -> 41, every 2000 steps).

  `update(step)` -> (d, n_points) at that step; a pure function of step, so resumed runs agree.
  """
  n_dims: int = 20
  dims_start: int = 5
  dims_inc: int = 1
  points_start: int = 11
  points_end: int = 41
  points_inc: int = 2
  interval: int = 2000

  def __post_init__(self):
    if not 1 <= self.dims_start <= self.n_dims:
      raise ValueError(f"dims_start must be in [1, n_dims={self.n_dims}], got {self.dims_start}")
    if not 1 <= self.points_start <= self.points_end:
      raise ValueError(f"need 1 <= points_start <= points_end, got {self.points_start}, {self.points_end}")
    if self.interval < 1:
      raise ValueError(f"interval must be positive, got {self.interval}")

  def update(self, step: int) -> tuple[int, int]:
    k = max(0, int(step)) // self.interval
    return (min(self.n_dims, self.dims_start + self.dims_inc * k),
            min(self.points_end, self.points_start + self.points_inc * k))
