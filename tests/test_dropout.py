"""Dropout beyond the hidden states. On attention probabilities (`attention_dropout`: HF's
attention_probs_dropout_prob / attn_pdrop / attention_dropout): the explicit softmax path equals
`jax.nn.dot_product_attention`, acts only in train mode, keeps the expectation, and leaves eval mode untouched.
On the pooled features of BERT / RoBERTa classification heads, as transformers does."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from lightft_jax.models import Transformer, get_preset
from lightft_jax.models.layers import softmax_attention


@pytest.mark.parametrize("heads,kv_heads,with_bias,scale,mask_shape", [
    (4, 4, False, None, (2, 1, 5, 7)), (4, 2, True, None, (2, 4, 5, 7)), (4, 1, True, 0.3, (5, 7))])
def test_softmax_attention_equals_dot_product_attention(heads, kv_heads, with_bias, scale, mask_shape):
  r = np.random.default_rng(0)
  b, t, s, dh = 2, 5, 7, 8
  q = jnp.asarray(r.normal(size=(b, t, heads, dh)), jnp.float32)
  k, v = (jnp.asarray(r.normal(size=(b, s, kv_heads, dh)), jnp.float32) for _ in range(2))
  mask = jnp.asarray(r.random(mask_shape) > 0.3).at[..., 0].set(True)  # per batch, per head, or one [T, S]
  bias = jnp.asarray(r.normal(size=(1, heads, t, s)), jnp.float32) if with_bias else None
  want = jax.nn.dot_product_attention(q, k, v, bias=bias, mask=jnp.broadcast_to(mask, (b, 1) + mask.shape[-2:])
                                      if mask.ndim == 2 else mask, scale=scale, implementation="xla")
  got = softmax_attention(q, k, v, bias=bias, mask=mask, scale=scale)
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_dropout_on_probabilities_keeps_the_expectation():
  """Uniform probabilities over S keys and v = 1: the output is the sum of the dropped-out probabilities, 1 in
  expectation (inverted dropout), with about `rate` of them zeroed."""
  b, t, s, h = 4, 8, 512, 2
  q = jnp.zeros((b, t, h, 4))
  k = jnp.asarray(np.random.default_rng(1).normal(size=(b, s, h, 4)), jnp.float32)
  drop = nnx.Dropout(0.25, rngs=nnx.Rngs(dropout=3))
  seen = []
  y = softmax_attention(q, k, jnp.ones((b, s, h, 4)), probs_fn=lambda p: seen.append(p) or drop(p))
  assert float(jnp.mean(seen[0] == 0)) == pytest.approx(0.0)
  assert float(jnp.mean(y)) == pytest.approx(1.0, abs=0.02)
  assert float(jnp.std(y)) > 0.01  # the rows really differ
  zeros = float(jnp.mean(drop(seen[0]) == 0))
  assert zeros == pytest.approx(0.25, abs=0.02)


@pytest.mark.parametrize("preset,scan", [("tiny-bert", False), ("tiny-llama", True)])  # gpt2: test_conveniences
def test_attention_dropout_acts_in_train_mode_only(preset, scan):
  base = get_preset(preset, scan_layers=scan)
  plain = Transformer(base, task="lm" if preset != "tiny-bert" else "base", rngs=nnx.Rngs(0))
  dropped = Transformer(base.replace(attention_dropout=0.3), task="lm" if preset != "tiny-bert" else "base",
                        rngs=nnx.Rngs(0))
  nnx.update(dropped, nnx.state(plain, nnx.Param))  # the same weights
  ids = jnp.asarray(np.random.default_rng(0).integers(3, 100, (2, 6)), jnp.int32)
  out = lambda m: jax.tree.leaves(m(ids))[0]
  plain.eval(), dropped.eval()
  np.testing.assert_array_equal(out(dropped), out(plain))  # eval mode: the fused path, exactly as before
  dropped.train()
  first, second = out(dropped), out(dropped)
  assert not np.allclose(first, out(plain), atol=1e-4) and not np.allclose(first, second, atol=1e-4)
  assert np.all(np.isfinite(first))


def test_a_model_without_attention_dropout_builds_no_dropout_for_it():
  """No Dropout module (whose construction forks the rng stream and so moves every later initialisation)
  unless the rate is non-zero: models and results from before attention dropout existed are unchanged."""
  model = Transformer(get_preset("tiny-bert"), task="base", rngs=nnx.Rngs(0))
  assert all(layer.attn.probs_dropout is None for layer in model.encoder.layers)
  with pytest.raises(ValueError, match="attention_dropout must be a rate"):
    get_preset("tiny-bert", attention_dropout=1.0)


@pytest.mark.parametrize("style,has_dropout", [("bert", True), ("roberta", True), ("mean", False)])
def test_bert_and_roberta_heads_drop_out_the_pooled_features_in_train_mode(style, has_dropout):
  """As BertForSequenceClassification / RobertaClassificationHead (hidden_dropout_prob before the classifier);
  a mean-pooled head (sentence-transformers) has none."""
  cfg = get_preset("tiny-bert", dropout=0.3)
  model = Transformer(cfg, task="classification", num_labels=2, head_style=style, rngs=nnx.Rngs(0))
  assert (model.head.dropout is not None) == has_dropout
  h = jnp.asarray(np.random.default_rng(0).normal(size=(2, 5, cfg.d_model)), jnp.float32)
  pooled, mask = h[:, 0], jnp.ones((2, 5), bool)
  model.eval()
  before = model.head(h, pooled, mask)
  np.testing.assert_array_equal(model.head(h, pooled, mask), before)
  model.train()
  assert (not np.allclose(model.head(h, pooled, mask), before)) == has_dropout
