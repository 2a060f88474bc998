"""In-context linear regression (Garg et al. 2022): `train.objective="icl_regression"` (icl/regression.py).

  python -m lightft_jax.main --config=configs/icl_regression.py:n_dims=5,steps=3000 --workdir=runs/icl_reg
Arguments: function (linear_regression | sparse_linear_regression | relu_2nn | decision_tree), n_dims,
n_points, steps, sparsity (non-zeros of sparse w), width (d_model), layers, heads, batch_size.
Writes the usual run directory; results.json `curves` holds squared error / d against the number of
in-context examples for the Transformer and the baselines (least squares, ridge, 3-NN, averaging, lasso for
the sparse class), plotted in error_vs_examples.png.
"""

from lightft_jax.train import config_lib


def get_config(arg=None):
  a = config_lib.parse_arg(arg, function="linear_regression", n_dims=5, n_points=21, steps=3000, sparsity=2,
                           width=64, layers=3, heads=4, batch_size=64)
  c = config_lib.base_config()
  c.train.objective = "icl_regression"
  c.total_steps = a.steps
  c.batch_size = a.batch_size
  c.log_every = 100
  c.model.name = "tiny-gpt2"
  c.model.overrides = dict(d_model=a.width, n_layers=a.layers, n_heads=a.heads, d_ff=4 * a.width, vocab_size=8)
  # Adam at a constant 3e-4 without clipping, as Garg et al.
  c.optimizer.lr = 3e-4
  c.optimizer.clip_norm = 0.0
  c.schedule.name = "constant"
  c.task.name = a.function
  c.task.eval_split, c.task.test_split = "validation", ""  # evaluation: fixed prompts (regression.eval_prompts)
  c.regression = dict(function_class=a.function, n_dims=a.n_dims, n_points=a.n_points, sparsity=a.sparsity,
                      noise_std=0.0, eval_prompts=256, ridge_alpha=0.1, lasso_alpha=0.01)
  # Curriculum (Garg et al.): d and the number of points grow every `interval` steps up to n_dims / n_points.
  c.curriculum = dict(dims_start=min(2, a.n_dims), dims_inc=1, points_start=min(5, a.n_points), points_inc=2,
                      interval=max(a.steps // 10, 1))
  c.checkpoint.keep_best = False
  c.wandb.mode = "disabled"
  return config_lib.finalize(c)
