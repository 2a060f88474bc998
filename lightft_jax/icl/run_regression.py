"""`run_icl_regression(config, workdir)`: train an in-context regressor, compare it with the baselines.

Writes config.json, metrics.jsonl (training loss), results.json (error curves: squared error / d against
the number of in-context examples, for the Transformer and each baseline) and error_vs_examples.png.
See configs/icl_regression.py for the keys.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

import jax
import ml_collections
from flax import nnx

from lightft_jax.data.icl_synthetic import Curriculum
from lightft_jax.icl import baselines as B
from lightft_jax.plots import plot_curves
from lightft_jax.icl.regression import InContextRegressor, error_curves, sample_prompts, train_regressor
from lightft_jax.models import get_preset


def run_icl_regression(config: ml_collections.ConfigDict, workdir: str | Path) -> dict:
  workdir = Path(workdir)
  workdir.mkdir(parents=True, exist_ok=True)
  (workdir / "config.json").write_text(config.to_json(indent=2))
  r = config.regression
  sparse = r.function_class == "sparse_linear_regression"
  cfg = get_preset(config.model.name, **dict(config.model.overrides),
                   max_positions=max(2 * r.n_points, get_preset(config.model.name).max_positions))
  model = InContextRegressor(cfg, r.n_dims, rngs=nnx.Rngs(config.seed))
  cur = config.curriculum
  curriculum = Curriculum(n_dims=r.n_dims, dims_start=cur.dims_start, dims_inc=cur.dims_inc,
                          points_start=cur.points_start, points_end=r.n_points, points_inc=cur.points_inc,
                          interval=cur.interval)
  task_kw = dict(noise_std=r.noise_std, sparsity=r.sparsity)
  with open(workdir / "metrics.jsonl", "w") as log_file:
    log = lambda row: (log_file.write(json.dumps({**row, "split": "train"}, allow_nan=False) + "\n"), log_file.flush())
    rows = train_regressor(model, steps=config.total_steps, batch_size=config.batch_size, lr=config.optimizer.lr,
                           curriculum=curriculum, function_class=r.function_class, seed=config.seed,
                           task_kw=task_kw, log_every=config.log_every, log=log)
  xs, ys = sample_prompts(jax.random.key(config.seed + 10_000), r.function_class, r.eval_prompts, r.n_points,
                          r.n_dims, **task_kw)
  baselines = {"least_squares": B.least_squares, "ridge": functools.partial(B.ridge, alpha=r.ridge_alpha),
               "3_nearest_neighbours": B.nearest_neighbours, "averaging": B.averaging}
  if sparse:
    baselines["lasso"] = functools.partial(B.lasso, alpha=r.lasso_alpha)
  curves = error_curves(model, xs, ys, baselines)
  results = {"function_class": r.function_class, "n_dims": r.n_dims, "n_points": r.n_points,
             "sparsity": r.sparsity if sparse else None, "noise_std": r.noise_std,
             "train_steps": config.total_steps, "batch_size": config.batch_size, "eval_prompts": r.eval_prompts,
             "final_train_loss": rows[-1]["loss"], "model": {"preset": config.model.name, **dict(config.model.overrides)},
             "num_params": int(sum(x.size for x in jax.tree.leaves(nnx.state(model, nnx.Param)))),
             "metric": "squared error / n_dims at each number of in-context examples", "curves": curves}
  (workdir / "results.json").write_text(json.dumps(results, indent=2, allow_nan=False))
  plot_curves(workdir / "error_vs_examples.png", range(r.n_points), curves, xlabel="in-context examples",
              ylabel="squared error / d",
              title=f"{r.function_class}, d={r.n_dims}" + (f", {r.sparsity}-sparse" if sparse else ""))
  return results
