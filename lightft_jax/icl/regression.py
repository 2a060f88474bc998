"""Regression in context (Garg et al. 2022): a GPT-2-style decoder reads (x_1, y_1, ..., x_n, y_n) and
predicts every y_i from the examples before it.

Tokens: x_i -> read_in(x_i); y_i -> read_in([y_i, 0, ..., 0]); the prediction for y_i is read_out of the
hidden state at x_i's token. Shapes: B prompts, n examples, d input dimensions, D d_model.

Training runs through the trainer (`train.objective="icl_regression"`, configs/icl_regression.py):
`regression_workload` hands it the model, the prompt stream, the loss (`squared_error`) and the evaluation.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from lightft_jax.data.icl_synthetic import Curriculum, sample_icl_batch, to_tokens
from lightft_jax.icl import baselines as B
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


def squared_error(model: InContextRegressor, batch: dict, train: bool = True):
  """Mean squared error over every prefix; `weight` [B,n] masks the points the curriculum has not reached
  (the trainer's objective: `train.steps.Objective`)."""
  pred = model(batch["xs"], batch["ys"])
  w = batch["weight"]
  return jnp.sum(jnp.square(pred - batch["ys"]) * w) / jnp.sum(w), {"predictions": pred, "weight": jnp.sum(w)}


def sample_prompts(key: jax.Array, function_class: str, batch_size: int, n_points: int, n_dims: int, *,
                   d: int | None = None, **kw) -> tuple[np.ndarray, np.ndarray]:
  """(xs [B,n,d], ys [B,n]) from `lightft_jax.data.sample_icl_batch` as numpy arrays."""
  batch = sample_icl_batch(key, function_class, batch_size=batch_size, n_points=n_points, n_dims=n_dims, d=d, **kw)
  return np.asarray(batch["xs"]), np.asarray(batch["ys"])


class PromptStream:
  """Endless training batches {xs [B,n,d], ys [B,n], weight [B,n]} of fresh prompts: step i draws from
  `fold_in(key(seed), i)` at the curriculum's (d, points) of step i. Prompts always hold
  `curriculum.points_end` examples (one compile); the points the curriculum has not reached are masked by
  `weight`. The state is the step, so a resumed run draws the same prompts."""

  def __init__(self, function_class: str, batch_size: int, n_dims: int, curriculum: Curriculum, seed: int = 0,
               **task_kw):
    self.function_class, self.batch_size, self.n_dims = function_class, batch_size, n_dims
    self.curriculum, self.key, self.task_kw, self.step = curriculum, jax.random.key(seed), task_kw, 0

  def __iter__(self):
    return self

  def __next__(self) -> dict[str, np.ndarray]:
    dims, points = self.curriculum.update(self.step)
    n = self.curriculum.points_end
    xs, ys = sample_prompts(jax.random.fold_in(self.key, self.step), self.function_class, self.batch_size, n,
                            self.n_dims, d=dims, **self.task_kw)
    self.step += 1
    weight = np.broadcast_to((np.arange(n) < points).astype(np.float32), (self.batch_size, n))
    return {"xs": xs, "ys": ys, "weight": np.ascontiguousarray(weight)}

  def log_fields(self) -> dict:
    """The curriculum's (d, points) of the last batch drawn."""
    dims, points = self.curriculum.update(max(self.step - 1, 0))
    return {"dims": dims, "points": points}

  def get_state(self) -> dict:
    return {"step": self.step}

  def set_state(self, state: dict) -> None:
    self.step = int(state["step"])


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


BASELINES = {"least_squares": B.least_squares, "3_nearest_neighbours": B.nearest_neighbours,
             "averaging": B.averaging}


def regression_workload(config):
  """`train.objective="icl_regression"`: an `InContextRegressor` on `config.model` (a decoder preset with
  `model.overrides`) trained on fresh prompts of `config.regression.function_class` under `config.curriculum`.
  Evaluation: squared error / d averaged over positions on `regression.eval_prompts` fixed prompts; at the end,
  the error curves against the baselines (results.json `curves`) and error_vs_examples.png."""
  from lightft_jax import peft
  from lightft_jax.models import get_preset
  from lightft_jax.plots import plot_curves
  from lightft_jax.train.workload import Workload
  r, cur = config.regression, config.curriculum
  sparse = r.function_class == "sparse_linear_regression"
  cfg = get_preset(config.model.name, **dict(config.model.overrides),
                   max_positions=max(2 * r.n_points, get_preset(config.model.name).max_positions))
  model = InContextRegressor(cfg, r.n_dims, rngs=nnx.Rngs(config.seed))
  peft.apply(model, config.peft)
  task_kw = dict(noise_std=r.noise_std, sparsity=r.sparsity)
  curriculum = Curriculum(n_dims=r.n_dims, dims_start=cur.dims_start, dims_inc=cur.dims_inc,
                          points_start=cur.points_start, points_end=r.n_points, points_inc=cur.points_inc,
                          interval=cur.interval)
  stream = PromptStream(r.function_class, config.batch_size, r.n_dims, curriculum, config.seed, **task_kw)
  xs, ys = sample_prompts(jax.random.key(config.seed + 10_000), r.function_class, r.eval_prompts, r.n_points,
                          r.n_dims, **task_kw)

  def evaluate(prog, params, frozen, rest, split, limit=0, report=False):
    curve = error_curves(prog.model(params, frozen, rest, train=False), xs, ys, {})["transformer"]
    return {"squared_error_per_dim": float(np.mean(curve)), "examples": len(xs)}

  def finish(prog, params, frozen, rest, workdir):
    baselines = {**BASELINES, "ridge": functools.partial(B.ridge, alpha=r.ridge_alpha)}
    if sparse:
      baselines["lasso"] = functools.partial(B.lasso, alpha=r.lasso_alpha)
    curves = error_curves(prog.model(params, frozen, rest, train=False), xs, ys, baselines)
    plot_curves(workdir / "error_vs_examples.png", range(r.n_points), curves, xlabel="in-context examples",
                ylabel="squared error / d",
                title=f"{r.function_class}, d={r.n_dims}" + (f", {r.sparsity}-sparse" if sparse else ""))
    return {"function_class": r.function_class, "n_dims": r.n_dims, "n_points": r.n_points,
            "sparsity": r.sparsity if sparse else None, "noise_std": r.noise_std, "eval_prompts": r.eval_prompts,
            "metric": "squared error / n_dims at each number of in-context examples", "curves": curves}

  return Workload(model=model, batches=stream, name=r.function_class, objective=squared_error,
                  evaluate=evaluate, finish=finish, log_fields=stream.log_fields)
