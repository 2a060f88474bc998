"""Sentence embeddings from a frozen encoder, for nearest-neighbour demonstration selection."""

from __future__ import annotations

from typing import Sequence

import jax.numpy as jnp
import numpy as np
from flax import nnx

from lightft_jax.models.tokenizer import Tokenizer
from lightft_jax.models.transformer import Transformer


@nnx.jit
def _mean_pool(encoder: Transformer, input_ids, attention_mask, token_type_ids):
  h = encoder(input_ids, attention_mask, token_type_ids)["hidden_states"].astype(jnp.float32)
  m = attention_mask[..., None].astype(jnp.float32)
  return (h * m).sum(1) / jnp.maximum(m.sum(1), 1.0)


def embed_texts(encoder: Transformer, tokenizer: Tokenizer, texts: Sequence[str], *, batch_size: int = 32,
                max_length: int = 128) -> np.ndarray:
  """Mean-pooled last hidden states [N,D] of `encoder` (a task="base" encoder) over real tokens."""
  out = []
  for start in range(0, len(texts), batch_size):
    chunk = list(texts[start:start + batch_size])
    n = len(chunk)
    chunk += [""] * (batch_size - n)  # fixed batch shape: one compile
    enc = tokenizer.encode_batch(chunk, max_length=max_length, padding="max_length")
    tt = enc.get("token_type_ids", np.zeros_like(enc["input_ids"]))
    out.append(np.asarray(_mean_pool(encoder, enc["input_ids"], enc["attention_mask"], tt))[:n])
  return np.concatenate(out) if out else np.zeros((0, encoder.cfg.d_model), np.float32)


def minilm_embedder(batch_size: int = 32, max_length: int = 128):
  """texts -> [N,384] embeddings with all-MiniLM-L6-v2 (mean pooling, as sentence-transformers does)."""
  from lightft_jax.models.assets import minilm_dir
  from lightft_jax.models.hf import from_pretrained, load_tokenizer
  encoder = from_pretrained(minilm_dir(), task="base")
  tokenizer = load_tokenizer(minilm_dir())
  return lambda texts: embed_texts(encoder, tokenizer, texts, batch_size=batch_size, max_length=max_length)
