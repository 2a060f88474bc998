"""Sentence embeddings: the masked mean of a frozen encoder's last hidden states (sentence-transformers' pooling).

One implementation for every user: nearest-neighbour demonstration selection (icl/retrieval.py) and the
condition vectors of context-conditioned hypernetworks (peft/hyper.py `ContextEncoder`, which takes any
texts -> [N, C] function; this is the default one).

  encoder = SentenceEncoder.load()          # all-MiniLM-L6-v2 (offline package), C = 384
  vecs = encoder(["a movie review", ...])   # float32 [N, C]
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from lightft_jax.models.tokenizer import Tokenizer
from lightft_jax.models.transformer import Transformer


def mean_pool(model: Transformer, input_ids: jax.Array, attention_mask: jax.Array,
              token_type_ids: jax.Array) -> jax.Array:
  """Masked mean of the last hidden states [B,T,D] over real tokens -> float32 [B,D]."""
  h = model(input_ids, attention_mask, token_type_ids)["hidden_states"].astype(jnp.float32)
  m = attention_mask.astype(jnp.float32)[..., None]
  return (h * m).sum(1) / jnp.maximum(m.sum(1), 1.0)


class SentenceEncoder:
  """texts -> float32 [N, D]: mean-pooled hidden states of a frozen encoder (a task="base" `Transformer`).

  Texts run in batches of `batch_size` rows (the last one filled with empty texts), each cut to `max_length`
  tokens and padded to a multiple of 16, so a few shapes compile once each.
  """

  def __init__(self, model: Transformer, tokenizer: Tokenizer, *, max_length: int = 128, batch_size: int = 32):
    self.model, self.tokenizer = model, tokenizer
    self.max_length, self.batch_size = max_length, batch_size
    graphdef, state = nnx.split(model)
    self._forward = jax.jit(lambda ids, mask, tt: mean_pool(nnx.merge(graphdef, state), ids, mask, tt))

  @classmethod
  def load(cls, path: str | Path | None = None, **kw) -> "SentenceEncoder":
    """An HF encoder directory (default: the offline all-MiniLM-L6-v2) as a frozen sentence encoder."""
    from lightft_jax.models.assets import minilm_dir
    from lightft_jax.models.hf import from_pretrained, load_tokenizer
    path = Path(path) if path is not None else minilm_dir()
    return cls(from_pretrained(path, task="base"), load_tokenizer(path), **kw)

  @property
  def dim(self) -> int:
    return self.model.cfg.d_model

  def __call__(self, texts: Sequence[str]) -> np.ndarray:
    texts = list(texts)
    out = []
    for start in range(0, len(texts), self.batch_size):
      chunk = texts[start:start + self.batch_size]
      n = len(chunk)
      chunk += [""] * (self.batch_size - n)
      enc = self.tokenizer.encode_batch(chunk, max_length=self.max_length)
      t = enc["input_ids"].shape[1]
      pad = ((0, 0), (0, min(self.max_length, 16 * -(-t // 16)) - t))
      ids = np.pad(enc["input_ids"], pad, constant_values=self.tokenizer.pad_token_id)
      mask = np.pad(enc["attention_mask"], pad)
      tt = np.pad(enc["token_type_ids"], pad) if "token_type_ids" in enc else np.zeros_like(ids)
      out.append(np.asarray(self._forward(ids, mask, tt))[:n])
    return np.concatenate(out) if out else np.zeros((0, self.dim), np.float32)


__all__ = ["SentenceEncoder", "mean_pool"]
