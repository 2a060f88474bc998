"""In-context linear regression (Garg et al. 2022) with lightft_jax.icl.run_icl_regression.

  python -m lightft_jax.main --config=configs/icl_regression.py:n_dims=5,steps=3000 --workdir=runs/icl_reg
Arguments: function (linear_regression | sparse_linear_regression | relu_2nn | decision_tree), n_dims,\nn_points, steps, sparsity (non-zeros of sparse w), width (d_model), layers, heads, batch_size.
"""

import ml_collections

from lightft_jax.train.config_lib import parse_arg


def get_config(arg=None):
  a = parse_arg(arg, function="linear_regression", n_dims=5, n_points=21, steps=3000, sparsity=2, width=64, layers=3, heads=4, batch_size=64)
  c = ml_collections.ConfigDict()
  c.job = "icl_regression"
  c.seed = 0
  c.total_steps = a.steps
  c.batch_size = a.batch_size
  c.log_every = 100
  c.model = ml_collections.ConfigDict(dict(name="tiny-gpt2", overrides=ml_collections.ConfigDict(dict(
      d_model=a.width, n_layers=a.layers, n_heads=a.heads, d_ff=4 * a.width, vocab_size=8))))
  c.optimizer = ml_collections.ConfigDict(dict(lr=3e-4))
  c.regression = ml_collections.ConfigDict(dict(
      function_class=a.function, n_dims=a.n_dims, n_points=a.n_points, sparsity=a.sparsity, noise_std=0.0, eval_prompts=256,
      ridge_alpha=0.1, lasso_alpha=0.01))
  # Curriculum (Garg et al.): d and the number of points grow every `interval` steps up to n_dims / n_points.
  c.curriculum = ml_collections.ConfigDict(dict(dims_start=min(2, a.n_dims), dims_inc=1,
                                                points_start=min(5, a.n_points), points_inc=2,
                                                interval=max(a.steps // 10, 1)))
  c.wandb = ml_collections.ConfigDict(dict(mode="disabled"))
  return c
