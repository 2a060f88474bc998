"""models.sentence.SentenceEncoder: the one mean-pooling encoder behind ICL retrieval and hypernetwork contexts."""

import jax.numpy as jnp
import numpy as np
from flax import nnx

from lightft_jax import peft
from lightft_jax.icl.retrieval import embed_texts
from lightft_jax.models import Transformer, assets, get_preset
from lightft_jax.models.sentence import SentenceEncoder
from lightft_jax.models.tokenizer import Tokenizer

TEXTS = ["a short one", "a somewhat longer sentence about a movie that was good", "third", "fourth text here", "x"]


def _encoder():
  tok = Tokenizer.from_file(assets.minilm_dir())
  cfg = get_preset("tiny-bert", vocab_size=tok.vocab_size, d_model=16, n_heads=2, d_ff=32, n_layers=1,
                   max_positions=64)
  return Transformer(cfg, task="base", rngs=nnx.Rngs(0)), tok


def test_rows_are_the_masked_mean_of_each_text_alone_in_any_batching():
  model, tok = _encoder()
  got = SentenceEncoder(model, tok, batch_size=2)(TEXTS)
  assert got.shape == (5, 16) and got.dtype == np.float32
  for text, row in zip(TEXTS, got):
    ids = jnp.asarray([tok.encode(text)], jnp.int32)
    want = np.asarray(model(ids)["hidden_states"].astype(jnp.float32)).mean(1)[0]
    np.testing.assert_allclose(row, want, atol=1e-5)
  np.testing.assert_allclose(embed_texts(model, tok, TEXTS, batch_size=4), got, atol=1e-5)
  assert SentenceEncoder(model, tok)([]).shape == (0, 16)


def test_context_encoder_takes_the_encoder_as_a_function():
  model, tok = _encoder()
  sentences = SentenceEncoder(model, tok)
  enc = peft.ContextEncoder(sentences)
  assert enc.dim == 16
  np.testing.assert_allclose(enc(TEXTS[:2]), sentences(TEXTS[:2]), atol=1e-6)
  demos = enc.demonstrations([TEXTS[:2], TEXTS[2:3]])
  np.testing.assert_allclose(demos, np.stack([sentences(TEXTS[:2]).mean(0), sentences(TEXTS[2:3])[0]]), atol=1e-5)
  constant = peft.ContextEncoder(lambda texts: np.ones((len(texts), 3)), dim=3)
  assert constant.dim == 3 and constant(["a", "b"]).shape == (2, 3)
