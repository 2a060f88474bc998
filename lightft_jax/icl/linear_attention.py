"""One linear self-attention layer vs one step of gradient descent (von Oswald et al. 2023).

Context tokens e_j = (x_j, y_j), query token e_q = (x_q, 0), all [d+1]. One LSA layer updates the query
  e_q <- e_q + (1/N) sum_j (W_v e_j) (W_k e_j)^T (W_q e_q)
and predicts y_q as the last coordinate. One GD step from w = 0 on L(w) = 1/(2N) sum_j (w.x_j - y_j)^2 with
learning rate eta gives w = (eta/N) sum_j y_j x_j, so y_q = (eta/N) sum_j y_j x_j.x_q: an LSA layer can
implement it exactly, and a trained one finds it.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx


class LinearSelfAttention(nnx.Module):
  """Single-head linear self-attention, query-only readout. Parameters W_q, W_k, W_v: [d+1, d+1]."""

  def __init__(self, n_dims: int, *, rngs: nnx.Rngs, init_std: float = 0.05):
    e = n_dims + 1
    init = nnx.initializers.normal(init_std)
    self.w_q = nnx.Param(init(rngs.params(), (e, e)))
    self.w_k = nnx.Param(init(rngs.params(), (e, e)))
    self.w_v = nnx.Param(init(rngs.params(), (e, e)))

  def __call__(self, xs: jax.Array, ys: jax.Array, x_query: jax.Array) -> jax.Array:
    """xs [B,N,d], ys [B,N], x_query [B,d] -> y_query predictions [B]."""
    ctx = jnp.concatenate([xs, ys[..., None]], -1)  # [B,N,d+1]
    q = jnp.concatenate([x_query, jnp.zeros_like(x_query[..., :1])], -1) @ self.w_q[...].T  # [B,d+1]
    k = ctx @ self.w_k[...].T
    v = ctx @ self.w_v[...].T
    return jnp.einsum("bn,bn->b", v[..., -1], jnp.einsum("bnf,bf->bn", k, q)) / xs.shape[1]


def gd_prediction(xs: jax.Array, ys: jax.Array, x_query: jax.Array, eta: float) -> jax.Array:
  """Prediction after one GD step from w = 0 with learning rate eta: (eta/N) sum_j y_j <x_j, x_q>  [B]."""
  return eta * jnp.einsum("bn,bnd,bd->b", ys, xs, x_query) / xs.shape[1]


def best_gd_learning_rate(xs, ys, x_query, y_query) -> float:
  """The eta minimising the squared error of `gd_prediction` on these tasks (closed form, it is linear in eta)."""
  a = np.asarray(gd_prediction(xs, ys, x_query, 1.0))
  return float(np.dot(a, np.asarray(y_query)) / np.dot(a, a))


def sample_regression_queries(rng: np.random.Generator, batch: int, n_context: int, n_dims: int):
  """Linear tasks with N(0, I) inputs and weights: xs [B,N,d], ys [B,N], x_query [B,d], y_query [B]."""
  x = rng.standard_normal((batch, n_context + 1, n_dims)).astype(np.float32)
  w = rng.standard_normal((batch, n_dims)).astype(np.float32)
  y = np.einsum("bnd,bd->bn", x, w)
  return x[:, :-1], y[:, :-1], x[:, -1], y[:, -1]


@nnx.jit
def _lsa_step(model, opt, xs, ys, xq, yq):
  def loss_fn(m):
    return 0.5 * jnp.mean(jnp.square(m(xs, ys, xq) - yq))
  loss, grads = nnx.value_and_grad(loss_fn)(model)
  opt.update(model, grads)
  return loss


def train_lsa(n_dims: int, n_context: int, *, steps: int = 2000, batch_size: int = 512, lr: float = 1e-3,
              seed: int = 0) -> tuple[LinearSelfAttention, list[float]]:
  """Trains a LinearSelfAttention layer on fresh linear regression tasks; returns (model, losses)."""
  rng = np.random.default_rng(seed)
  model = LinearSelfAttention(n_dims, rngs=nnx.Rngs(seed))
  opt = nnx.Optimizer(model, optax.adam(lr), wrt=nnx.Param)
  losses = [float(_lsa_step(model, opt, *sample_regression_queries(rng, batch_size, n_context, n_dims)))
            for _ in range(steps)]
  return model, losses


def compare_lsa_with_gd(model: LinearSelfAttention, n_dims: int, n_context: int, *, batch_size: int = 2048,
                        seed: int = 1) -> dict:
  """von Oswald et al.'s comparison on fresh tasks, GD with its best learning rate:

  pred_diff: ||y_LSA - y_GD|| / sqrt(B) (root mean squared difference of predictions);
  sensitivity_cos: mean over tasks of cos(d y_LSA / d x_q, d y_GD / d x_q);
  loss_lsa / loss_gd: their 0.5 * mean squared errors; eta: the GD learning rate.
  """
  xs, ys, xq, yq = map(jnp.asarray, sample_regression_queries(np.random.default_rng(seed), batch_size, n_context,
                                                             n_dims))
  eta = best_gd_learning_rate(xs, ys, xq, yq)
  lsa = lambda q: model(xs, ys, q).sum()
  gd = lambda q: gd_prediction(xs, ys, q, eta).sum()
  g_lsa, g_gd = jax.grad(lsa)(xq), jax.grad(gd)(xq)  # per-task gradients: each row depends on its own x_q
  cos = jnp.sum(g_lsa * g_gd, -1) / (jnp.linalg.norm(g_lsa, axis=-1) * jnp.linalg.norm(g_gd, axis=-1))
  p_lsa, p_gd = model(xs, ys, xq), gd_prediction(xs, ys, xq, eta)
  return {"pred_diff": float(jnp.sqrt(jnp.mean(jnp.square(p_lsa - p_gd)))),
          "sensitivity_cos": float(jnp.mean(cos)),
          "loss_lsa": float(0.5 * jnp.mean(jnp.square(p_lsa - yq))),
          "loss_gd": float(0.5 * jnp.mean(jnp.square(p_gd - yq))), "eta": eta,
          "target_rms": float(jnp.sqrt(jnp.mean(jnp.square(yq))))}
