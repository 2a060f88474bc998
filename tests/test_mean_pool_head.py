"""The "mean" classification head (sentence-transformers pooling): ignores padding, matches the PyTorch
mean-pooled encoder output, needs no pooler, and refuses an HF export it could not round-trip."""

import jax.numpy as jnp
import numpy as np
import pytest
import torch
import transformers as T
from flax import nnx

from lightft_jax.models import Transformer, from_pretrained, get_preset, save_pretrained
from lightft_jax.models.heads import mean_pool

VOCAB = 97


def test_mean_pool_averages_only_real_tokens():
  h = jnp.arange(2 * 4 * 3, dtype=jnp.float32).reshape(2, 4, 3)
  mask = jnp.array([[1, 1, 0, 0], [1, 1, 1, 1]])
  out = np.asarray(mean_pool(h, mask))
  np.testing.assert_allclose(out[0], np.asarray(h[0, :2].mean(0)), rtol=1e-6)
  np.testing.assert_allclose(out[1], np.asarray(h[1].mean(0)), rtol=1e-6)
  np.testing.assert_allclose(np.asarray(mean_pool(h, None)), np.asarray(h.mean(1)), rtol=1e-6)


def test_mean_head_logits_unchanged_when_padding_is_appended():
  model = Transformer(get_preset("tiny-bert", initializer_range=0.2), task="classification", num_labels=3,
                      head_style="mean", rngs=nnx.Rngs(0))
  ids = jnp.asarray(np.random.default_rng(0).integers(3, 1000, (2, 6)), jnp.int32)
  base = model(ids, jnp.ones_like(ids))["logits"]
  junk = jnp.asarray(np.random.default_rng(1).integers(3, 1000, (2, 5)), jnp.int32)
  padded = jnp.concatenate([ids, junk], 1)
  mask = jnp.concatenate([jnp.ones_like(ids), jnp.zeros_like(junk)], 1)
  np.testing.assert_allclose(np.asarray(model(padded, mask)["logits"]), np.asarray(base), atol=1e-5, rtol=0)
  # the padded positions would change an unmasked mean: the test can see a mean over the wrong positions
  wrong = model.head.out(jnp.mean(model(padded, mask)["hidden_states"], 1))
  assert np.abs(np.asarray(wrong - base)).max() > 1e-3


@pytest.fixture()
def bert_dir(tmp_path):
  torch.manual_seed(0)
  cfg = T.BertConfig(vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                     intermediate_size=48, max_position_embeddings=40)
  T.BertModel(cfg).eval().save_pretrained(tmp_path, safe_serialization=True)
  return tmp_path


def test_mean_head_matches_torch_mean_pooling(bert_dir):
  model = from_pretrained(bert_dir, task="classification", num_labels=2, head_style="mean")
  assert model.pooler is None and model.head.style == "mean"
  rs = np.random.RandomState(3)
  ids = rs.randint(2, VOCAB, (3, 9))
  mask = np.ones((3, 9), np.int64)
  mask[1, 6:], mask[2, 3:] = 0, 0
  ours = np.asarray(model(input_ids=ids, attention_mask=mask)["logits"])
  with torch.no_grad():
    h = T.BertModel.from_pretrained(bert_dir).eval()(input_ids=torch.tensor(ids),
                                                     attention_mask=torch.tensor(mask)).last_hidden_state
    m = torch.tensor(mask, dtype=h.dtype)[:, :, None]
    pooled = ((h * m).sum(1) / m.sum(1)).numpy()  # sentence-transformers' Pooling(mode="mean")
  kernel, bias = np.asarray(model.head.out.kernel[...]), np.asarray(model.head.out.bias[...])
  np.testing.assert_allclose(ours, pooled @ kernel + bias, atol=1e-4, rtol=0)


def test_mean_head_cannot_be_saved_as_an_hf_class(bert_dir, tmp_path):
  model = from_pretrained(bert_dir, task="classification", num_labels=2, head_style="mean")
  with pytest.raises(ValueError, match="head style 'mean'"):
    save_pretrained(model, tmp_path / "out")
