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

from lightft_jax.data.icl_synthetic import Curriculum, sample_icl_batch, to_tokens
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

  def __call__(self, xs: jax.Array, ys: jax.Array) -> jax.Array:
    """Predictions [B,n]: entry i sees x_1..x_i and y_1..y_{i-1}."""
    if xs.shape[-1] != self.n_dims:
      raise ValueError(f"xs has {xs.shape[-1]} dimensions but the model reads {self.n_dims}")
    h = self.backbone(inputs_embeds=self.read_in(to_tokens(xs, ys)))["hidden_states"]
    return self.read_out(h[:, ::2])[..., 0]


@nnx.jit
def _train_step(model: InContextRegressor, opt: nnx.Optimizer, xs, ys, weight):
  """One Adam step on squared error over every prefix; weight [n] masks curriculum-inactive points."""
  def loss_fn(m):
    err = jnp.square(m(xs, ys) - ys) * weight
    return err.sum() / (weight.sum() * xs.shape[0])
  loss, grads = nnx.value_and_grad(loss_fn)(model)
  opt.update(model, grads)
  return loss


def sample_prompts(key: jax.Array, function_class: str, batch_size: int, n_points: int, n_dims: int, *,
                   d: int | None = None, **kw) -> tuple[np.ndarray, np.ndarray]:
  """(xs [B,n,d], ys [B,n]) from `lightft_jax.data.sample_icl_batch` as numpy arrays."""
  batch = sample_icl_batch(key, function_class, batch_size=batch_size, n_points=n_points, n_dims=n_dims, d=d, **kw)
  return np.asarray(batch["xs"]), np.asarray(batch["ys"])


def train_regressor(model: InContextRegressor, *, steps: int, batch_size: int, lr: float,
                    curriculum: Curriculum, function_class: str = "linear_regression", seed: int = 0,
                    task_kw: dict | None = None, log_every: int = 100, log=None) -> list[dict]:
  """Trains on fresh prompts of `function_class` every step; returns logged rows {step, loss, dims, points}.

  Prompts always hold `curriculum.points_end` examples (one compile); the points the curriculum has not
  reached yet are masked out of the loss.
  """
  key = jax.random.key(seed)
  n_points = curriculum.points_end
  opt = nnx.Optimizer(model, optax.adam(lr), wrt=nnx.Param)
  rows = []
  for step in range(steps):
    dims, points = curriculum.update(step)
    xs, ys = sample_prompts(jax.random.fold_in(key, step), function_class, batch_size, n_points, model.n_dims,
                            d=dims, **(task_kw or {}))
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
