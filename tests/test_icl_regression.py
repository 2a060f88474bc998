"""Regression in context: baselines, the in-context regressor's causality and training, LSA vs one GD step."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from lightft_jax.icl import baselines as B
from lightft_jax.icl.linear_attention import (LinearSelfAttention, compare_lsa_with_gd, gd_prediction,
                                              sample_regression_queries, train_lsa)
from lightft_jax.icl.regression import InContextRegressor, sample_prompts
from lightft_jax.models import get_preset


def _linear(seed=0, b=4, n=8, d=3, sparse=False):
  rng = np.random.default_rng(seed)
  xs = rng.standard_normal((b, n, d))
  w = rng.standard_normal((b, d))
  if sparse:
    w[:, 1:] = 0.0
  return xs, np.einsum("bnd,bd->bn", xs, w), w


def test_baselines_against_closed_forms():
  xs, ys, _ = _linear()
  d = xs.shape[-1]
  ls = B.least_squares(xs, ys)
  assert np.all(ls[:, 0] == 0)
  np.testing.assert_allclose(ls[:, d:], ys[:, d:], atol=1e-8)  # exact once d examples are seen
  np.testing.assert_allclose(B.ridge(xs, ys, alpha=1e-9)[:, d:], ys[:, d:], atol=1e-5)
  assert np.abs(B.ridge(xs, ys, alpha=1e3)[:, 1:]).max() < np.abs(ys).max() * 0.1  # shrinks towards 0
  i = 5
  avg = (ys[:, :i, None] * xs[:, :i]).mean(1)
  np.testing.assert_allclose(B.averaging(xs, ys)[:, i], np.einsum("bd,bd->b", avg, xs[:, i]))
  nn1 = B.nearest_neighbours(xs, ys, k=1)[:, i]
  nearest = np.argmin(np.linalg.norm(xs[:, :i] - xs[:, i:i + 1], axis=-1), -1)
  np.testing.assert_allclose(nn1, ys[np.arange(len(ys)), nearest])
  xs, ys, _ = _linear(sparse=True, b=16, d=6, n=6)  # 1-sparse w, fewer points than d: lasso beats min-norm LS
  err = lambda p: np.square(p[:, -1] - ys[:, -1]).mean()  # 5 points seen, d = 6
  assert err(B.lasso(xs, ys, alpha=1e-4)) < 0.1 * err(B.least_squares(xs, ys))


def test_regressor_is_causal_and_trains():
  cfg = get_preset("tiny-gpt2", d_model=32, n_layers=1, n_heads=2, d_ff=64, vocab_size=8)
  model = InContextRegressor(cfg, 3, rngs=nnx.Rngs(0))
  xs, ys = sample_prompts(jax.random.key(0), "linear_regression", 2, 6, 3)
  base = np.asarray(model(xs, ys))
  assert base.shape == (2, 6)
  xs2, ys2 = xs.copy(), ys.copy()
  ys2[:, 3] += 5.0  # y_3 and everything after x_4 must not change predictions 0..3
  xs2[:, 4:] += 1.0
  np.testing.assert_allclose(np.asarray(model(xs2, ys2))[:, :4], base[:, :4], atol=1e-5)
  assert np.abs(np.asarray(model(xs2, ys2))[:, 4] - base[:, 4]).max() > 1e-4
  with pytest.raises(ValueError, match="reads 3"):
    model(np.zeros((1, 2, 4), np.float32), np.zeros((1, 2), np.float32))


@pytest.mark.slow  # over 20 s: keeps the default suite under 15 minutes on 2 cores
def test_icl_regression_trains_through_the_trainer_and_writes_curves(tmp_path):
  from lightft_jax.train import config_lib
  from lightft_jax.train.loop import train
  c = config_lib.load_config("configs/icl_regression.py:function=sparse_linear_regression,sparsity=1,n_dims=3,"
                             "n_points=5,steps=40,width=16,layers=1,heads=2,batch_size=16",
                             [("regression.eval_prompts", "8"), ("log_every", "10"),
                              ("curriculum.interval", "20")])
  res = train(c, tmp_path)
  saved = json.loads((tmp_path / "results.json").read_text())
  assert set(saved["curves"]) == {"transformer", "least_squares", "ridge", "3_nearest_neighbours", "averaging",
                                  "lasso"} == set(res["curves"])
  assert all(len(v) == 5 for v in saved["curves"].values())
  assert saved["curves"]["least_squares"][-1] < 1e-6  # 4 points >= d: exact
  rows = [json.loads(l) for l in (tmp_path / "metrics.jsonl").read_text().splitlines()]
  train_rows = [r for r in rows if r["split"] == "train"]
  assert [r["step"] for r in train_rows] == [10, 20, 30, 40]
  assert [r["dims"] for r in train_rows] == [2, 2, 3, 3]  # the curriculum grows d every 20 steps
  assert saved["status"] == "completed" and saved["eval"]["squared_error_per_dim"] == pytest.approx(
      np.mean(saved["curves"]["transformer"]))
  assert (tmp_path / "error_vs_examples.png").stat().st_size > 0


def test_lsa_can_implement_one_gd_step_exactly():
  d, eta = 3, 0.7
  lsa = LinearSelfAttention(d, rngs=nnx.Rngs(0))
  proj = np.zeros((d + 1, d + 1), np.float32)
  proj[:d, :d] = np.eye(d)
  value = np.zeros((d + 1, d + 1), np.float32)
  value[d, d] = eta  # carries y_j into the query's label slot
  lsa.w_q[...], lsa.w_k[...], lsa.w_v[...] = jnp.asarray(proj), jnp.asarray(proj), jnp.asarray(value)
  xs, ys, xq, _ = sample_regression_queries(np.random.default_rng(0), 16, 10, d)
  np.testing.assert_allclose(lsa(xs, ys, xq), gd_prediction(xs, ys, xq, eta), rtol=1e-5, atol=1e-5)
  stats = compare_lsa_with_gd(lsa, d, 10, batch_size=256)
  assert stats["sensitivity_cos"] > 0.999 and stats["pred_diff"] < 0.2 * stats["target_rms"]


def test_trained_lsa_matches_gradient_descent():
  model, losses = train_lsa(3, 10, steps=400, batch_size=256, lr=3e-3)
  assert losses[-1] < 0.5 * losses[0]
  stats = compare_lsa_with_gd(model, 3, 10, batch_size=512)
  assert stats["sensitivity_cos"] > 0.98, stats
  assert stats["pred_diff"] < 0.25 * stats["target_rms"], stats
  assert abs(stats["loss_lsa"] - stats["loss_gd"]) < 0.2 * stats["loss_gd"], stats
