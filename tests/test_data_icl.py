"""Synthetic regression ICL tasks (Garg et al.) and discrete ICL prompts."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lightft_jax import data
from lightft_jax.data import icl_synthetic as S


def _batch(fc, d=5, key=0, noise_std=0.0):
  """One static configuration per function class (d, key and noise are traced: no recompiles)."""
  return S.sample_icl_batch(jax.random.key(key), fc, batch_size=3, n_points=24, n_dims=8, d=d,
                            noise_std=noise_std)


def test_shapes_padding_and_token_encoding():
  b = _batch("linear_regression")
  xs, ys, tok = (np.asarray(b[k]) for k in ("xs", "ys", "tokens"))
  assert xs.shape == (3, 24, 8) and ys.shape == (3, 24) and tok.shape == (3, 48, 8)
  assert np.all(xs[..., 5:] == 0) and np.all(xs[..., :5] != 0)
  assert np.array_equal(tok[:, 0::2], xs) and np.array_equal(tok[:, 1::2, 0], ys)
  assert np.all(tok[:, 1::2, 1:] == 0) and np.array_equal(b["x_positions"], 2 * np.arange(24))
  assert abs(xs[..., :5].std() - 1) < 0.15  # x ~ N(0, I)


@pytest.mark.parametrize("fc,nonzero", [("linear_regression", 5), ("sparse_linear_regression", 3)])
def test_linear_targets_are_exactly_linear(fc, nonzero):
  b = _batch(fc)
  for x, y in zip(np.asarray(b["xs"], np.float64), np.asarray(b["ys"], np.float64)):
    w, res, *_ = np.linalg.lstsq(x[:, :5], y, rcond=None)
    assert np.allclose(x[:, :5] @ w, y, atol=1e-4)
    assert (np.abs(w) > 1e-4).sum() == nonzero


def test_noise_breaks_exact_fit():
  b = _batch("linear_regression", noise_std=0.5)
  x, y = np.asarray(b["xs"][0, :, :5], np.float64), np.asarray(b["ys"][0], np.float64)
  w = np.linalg.lstsq(x, y, rcond=None)[0]
  assert np.mean((x @ w - y) ** 2) > 0.05


def test_decision_tree_is_piecewise_constant_on_active_signs():
  b = _batch("decision_tree", d=3)
  xs, ys = np.asarray(b["xs"]), np.asarray(b["ys"])
  for x, y in zip(xs, ys):
    assert len(np.unique(y)) <= 16  # depth-4 tree: at most 16 leaves
    signs = [tuple(s) for s in (x[:, :3] > 0)]
    for s in set(signs):  # same sign pattern on the active coordinates -> same leaf
      assert len(np.unique(y[[i for i, t in enumerate(signs) if t == s]])) == 1


def test_relu_net_is_deterministic_given_the_key():
  b, b2, b3 = _batch("relu_2nn", key=1), _batch("relu_2nn", key=1), _batch("relu_2nn", key=2)
  assert np.array_equal(b["ys"], b2["ys"]) and not np.allclose(b["ys"], b3["ys"])
  assert np.std(np.asarray(b["ys"])) > 0.1


def test_jitted_with_traced_dimension():
  for d in (2, 4):  # the curriculum's d is a traced argument of the jitted sampler
    xs = _batch("linear_regression", d=jnp.int32(d))["xs"]
    assert int(jnp.sum(xs[..., d:] != 0)) == 0 and int(jnp.sum(xs[..., :d] == 0)) == 0
  with pytest.raises(ValueError, match="available"):
    S.sample_icl_batch(jax.random.key(0), "quadratic", batch_size=1, n_points=2, n_dims=2)


def test_curriculum_grows_and_saturates():
  c = data.Curriculum(n_dims=20, dims_start=5, points_start=11, points_end=41, interval=2000)
  assert c.update(0) == (5, 11) and c.update(1999) == (5, 11) and c.update(2000) == (6, 13)
  assert c.update(10 ** 6) == (20, 41)
  with pytest.raises(ValueError, match="dims_start"):
    data.Curriculum(n_dims=4, dims_start=5)


def test_associative_recall_answer_is_the_queried_value():
  for p in data.associative_recall(20, num_pairs=5, seed=3):
    toks = p.prompt.split()
    pairs = dict(zip(toks[0:-1:2], toks[1:-1:2]))
    assert len(pairs) == 5 and p.choices[p.answer] == " " + pairs[toks[-1]]
  with pytest.raises(ValueError, match="distinct keys"):
    data.associative_recall(1, num_pairs=30)


def test_few_shot_classification_label_mappings():
  demos = [{"text": f"demo{i}", "label": i % 2} for i in range(10)]
  queries = [{"text": "query", "label": 1}]
  words = ["negative", "positive"]

  def shown(mapping, **kw):
    p = data.few_shot_classification(demos, queries, label_words=words, k=6, mapping=mapping, seed=0, **kw)[0]
    lines = p.prompt.split("\n\n")
    assert lines[-1] == "Input: query\nLabel:" and p.choices == (" negative", " positive")
    return p, [(int(l.split("\n")[0][len("Input: demo"):]) % 2, l.split()[-1]) for l in lines[:-1]]

  p, gold = shown("gold")
  assert p.answer == 1 and all(words[y] == w for y, w in gold)
  p, flipped = shown("flipped", query_under_mapping=True)
  assert p.answer == 0 and all(words[1 - y] == w for y, w in flipped)
  _, explicit = shown([1, 1])
  assert all(w == "positive" for _, w in explicit)
  _, rand = shown("random")
  assert {w for _, w in rand} <= set(words)
  with pytest.raises(ValueError, match="label mapping must be one of"):
    shown("shuffled")
