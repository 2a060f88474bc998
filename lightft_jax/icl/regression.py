"""Regression in context (Garg et al. 2022): a GPT-2-style decoder reads (x_1, y_1, ..., x_n, y_n) and
predicts every y_i from the examples before it.

Tokens: x_i -> read_in(x_i); y_i -> read_in([y_i, 0, ..., 0]); the prediction for y_i is read_out of the
hidden state at x_i's token. Shapes: B prompts, n examples, d input dimensions, D d_model.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from lightft_jax.models.config import TransformerConfig
from lightft_jax.models.layers import Dense
from lightft_jax.models.transformer import Transformer


class InContextRegressor(nnx.Module):
  """read_in Linear -> `Transformer(cfg, task="base")` on inputs_embeds -> read_out Linear."""

  def __init__(self, cfg: TransformerConfig, n_dims: int, *, rngs: nnx.Rngs):
    if cfg.arch != "decoder":
      raise ValueError(f"in-context regression needs a decoder config, got arch={cfg.arch!r}")
    self.n_dims = n_dims
    self.read_in = Dense(n_dims, cfg.d_model, axes=(None, "embed"), use_bias=True, cfg=cfg, rngs=rngs)
    self.backbone = Transformer(cfg, task="base", rngs=rngs)
    self.read_out = Dense(cfg.d_model, 1, axes=("embed", None), use_bias=True, cfg=cfg, rngs=rngs)

  @staticmethod
  def interleave(xs: jax.Array, ys: jax.Array) -> jax.Array:
    """xs [B,n,d], ys [B,n] -> tokens [B,2n,d]: x_1, (y_1,0..), x_2, (y_2,0..), ..."""
    y_tok = jnp.zeros_like(xs).at[..., 0].set(ys)
    return jnp.stack([xs, y_tok], 2).reshape(xs.shape[0], -1, xs.shape[-1])

  def __call__(self, xs: jax.Array, ys: jax.Array) -> jax.Array:
    """Predictions [B,n]: entry i sees x_1..x_i and y_1..y_{i-1}."""
    if xs.shape[-1] != self.n_dims:
      raise ValueError(f"xs has {xs.shape[-1]} dimensions but the model reads {self.n_dims}")
    h = self.backbone(inputs_embeds=self.read_in(self.interleave(xs, ys)))["hidden_states"]
    return self.read_out(h[:, ::2])[..., 0]


def sample_linear_tasks(rng: np.random.Generator, batch: int, n_points: int, n_dims: int, *,
                        active_dims: int | None = None, sparsity: int | None = None,
                        noise_std: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
  """Linear functions y = <w, x> (+ noise) with x, w ~ N(0, I). Returns xs [B,n,d], ys [B,n].

  active_dims: curriculum truncation (coordinates past it are zero); sparsity: keep s random entries of w.
  """
  active = n_dims if active_dims is None else active_dims
  xs = rng.standard_normal((batch, n_points, n_dims)).astype(np.float32)
  xs[..., active:] = 0.0
  w = rng.standard_normal((batch, n_dims)).astype(np.float32)
  w[:, active:] = 0.0
  if sparsity is not None:
    keep = np.argsort(rng.random((batch, active)), -1)[:, :sparsity]
    mask = np.zeros((batch, n_dims), bool)
    np.put_along_axis(mask, keep, True, -1)
    w = np.where(mask, w, 0.0).astype(np.float32)
  ys = np.einsum("bnd,bd->bn", xs, w) + noise_std * rng.standard_normal((batch, n_points)).astype(np.float32)
  return xs, ys.astype(np.float32)


@nnx.jit
def _train_step(model: InContextRegressor, opt: nnx.Optimizer, xs, ys, weight):
  """One Adam step on squared error over every prefix; weight [n] masks curriculum-inactive points."""
  def loss_fn(m):
    err = jnp.square(m(xs, ys) - ys) * weight
    return err.sum() / (weight.sum() * xs.shape[0])
  loss, grads = nnx.value_and_grad(loss_fn)(model)
  opt.update(model, grads)
  return loss


def curriculum(step: int, *, n_dims: int, n_points: int, start_dims: int, start_points: int, every: int,
               dims_inc: int = 1, points_inc: int = 2) -> tuple[int, int]:
  """Garg et al.'s curriculum: (active dims, active points) grow by (dims_inc, points_inc) every `every` steps."""
  if every <= 0:
    return n_dims, n_points
  stage = step // every
  return min(n_dims, start_dims + stage * dims_inc), min(n_points, start_points + stage * points_inc)


def train_regressor(model: InContextRegressor, *, steps: int, batch_size: int, n_points: int, lr: float,
                    seed: int = 0, sparsity: int | None = None, noise_std: float = 0.0,
                    curriculum_kw: dict | None = None, log_every: int = 100, log=None) -> list[dict]:
  """Trains on fresh random linear tasks every step; returns the logged rows {step, loss, dims, points}.

  The prompt length is fixed at `n_points` (one compile); inactive curriculum points are masked out.
  """
  rng = np.random.default_rng(seed)
  opt = nnx.Optimizer(model, optax.adam(lr), wrt=nnx.Param)
  rows = []
  for step in range(steps):
    dims, points = (model.n_dims, n_points) if curriculum_kw is None else \
        curriculum(step, n_dims=model.n_dims, n_points=n_points, **curriculum_kw)
    xs, ys = sample_linear_tasks(rng, batch_size, n_points, model.n_dims, active_dims=dims,
                                 sparsity=None if sparsity is None else min(sparsity, dims), noise_std=noise_std)
    weight = (np.arange(n_points) < points).astype(np.float32)
    loss = float(_train_step(model, opt, xs, ys, weight))
    if step % log_every == 0 or step == steps - 1:
      row = {"step": step, "loss": loss, "dims": dims, "points": points}
      rows.append(row)
      if log is not None:
        log(row)
  return rows


def error_curves(model: InContextRegressor | None, xs: np.ndarray, ys: np.ndarray, baselines: dict) -> dict:
  """Squared error / d at each number of in-context examples (0..n-1), for the model and each baseline.

  Returns {name: [n] mean over prompts}; `model=None` evaluates the baselines only.
  """
  d = xs.shape[-1]
  curves = {}
  if model is not None:
    curves["transformer"] = np.square(np.asarray(model(jnp.asarray(xs), jnp.asarray(ys))) - ys).mean(0) / d
  for name, fn in baselines.items():
    curves[name] = np.square(fn(xs, ys) - ys).mean(0) / d
  return {k: [float(v) for v in vals] for k, vals in curves.items()}
