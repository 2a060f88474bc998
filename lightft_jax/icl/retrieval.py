"""Sentence embeddings from a frozen encoder, for nearest-neighbour demonstration selection
(the pooling itself is `models.sentence.SentenceEncoder`)."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from lightft_jax.models.sentence import SentenceEncoder
from lightft_jax.models.tokenizer import Tokenizer
from lightft_jax.models.transformer import Transformer


def embed_texts(encoder: Transformer, tokenizer: Tokenizer, texts: Sequence[str], *, batch_size: int = 32,
                max_length: int = 128) -> np.ndarray:
  """Mean-pooled last hidden states [N,D] of `encoder` (a task="base" encoder) over real tokens."""
  return SentenceEncoder(encoder, tokenizer, max_length=max_length, batch_size=batch_size)(texts)


def minilm_embedder(batch_size: int = 32, max_length: int = 128):
  """texts -> [N,384] embeddings with all-MiniLM-L6-v2 (mean pooling, as sentence-transformers does)."""
  return SentenceEncoder.load(max_length=max_length, batch_size=batch_size)
