"""Task heads on top of the last hidden states.

Sequence classification pools one token: the first (BERT: the pooler output, RoBERTa: dense+tanh on
<s>) or, for decoders, the last non-padding token (GPT-2 / Llama); or, with style "mean", averages the
hidden states over the non-padding tokens (sentence-transformers' pooling, e.g. all-MiniLM-L6-v2), then
one linear layer. Regression is classification with one output. QA emits start/end logits [B,T,2]. Token
classification emits [B,T,num_labels].
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from lightft_jax.models.config import TransformerConfig
from lightft_jax.models.layers import Ctx, Dense

HEAD_STYLES = ("bert", "roberta", "last_token", "mean")


def default_head_style(cfg: TransformerConfig) -> str:
  if cfg.arch == "decoder":
    return "last_token"
  return "bert" if cfg.pooler else "roberta"


def last_token(h: jax.Array, mask: jax.Array | None) -> jax.Array:
  """h [B,T,D] -> [B,D] at the last position whose mask is 1 (right padding) or T-1 (left padding)."""
  if mask is None:
    return h[:, -1]
  t = h.shape[1]
  idx = jnp.max(jnp.where(mask.astype(bool), jnp.arange(t), -1), axis=-1)
  return jnp.take_along_axis(h, jnp.maximum(idx, 0)[:, None, None], axis=1)[:, 0]


def mean_pool(h: jax.Array, mask: jax.Array | None) -> jax.Array:
  """h [B,T,D] -> [B,D]: the mean over positions whose mask is 1 (every position when mask is None)."""
  if mask is None:
    return jnp.mean(h, axis=1)
  m = mask.astype(h.dtype)[:, :, None]
  return jnp.sum(h * m, axis=1) / jnp.maximum(jnp.sum(m, axis=1), 1.0)


class ClassificationHead(nnx.Module):
  def __init__(self, cfg: TransformerConfig, num_labels: int, style: str, rngs: nnx.Rngs):
    if style not in HEAD_STYLES:
      raise ValueError(f"unknown head style {style!r}; choose from {HEAD_STYLES}")
    if style == "bert" and not cfg.pooler:
      raise ValueError("head style 'bert' needs a model with a pooler")
    self.style, self.num_labels = style, num_labels
    self.dense = (Dense(cfg.d_model, cfg.d_model, axes=("embed", "embed_out"), use_bias=True, cfg=cfg, rngs=rngs)
                  if style == "roberta" else None)
    self.out = Dense(cfg.d_model, num_labels, axes=("embed", None), use_bias=style != "last_token", cfg=cfg,
                     rngs=rngs)
    # BertForSequenceClassification / RobertaClassificationHead drop out the pooled features (hidden_dropout_prob);
    # built last, and only when used, so that it moves no initialisation (a Dropout forks the rng stream).
    self.dropout = (nnx.Dropout(cfg.dropout, rngs=rngs) if cfg.dropout and style in ("bert", "roberta")
                    else None)

  def __call__(self, h, pooled, mask, ctx: Ctx = None):
    drop = self.dropout or (lambda x: x)
    if self.style == "bert":
      x = drop(pooled)
    elif self.style == "roberta":
      x = drop(jnp.tanh(self.dense(drop(h[:, 0]), ctx)))
    elif self.style == "mean":
      x = mean_pool(h, mask)
    else:
      x = last_token(h, mask)
    return self.out(x, ctx)


class TokenHead(nnx.Module):
  """Per-token logits [B,T,n] (NER: n labels; QA: n=2 for start/end)."""

  def __init__(self, cfg: TransformerConfig, n: int, rngs: nnx.Rngs):
    self.out = Dense(cfg.d_model, n, axes=("embed", None), use_bias=True, cfg=cfg, rngs=rngs)

  def __call__(self, h, pooled, mask, ctx: Ctx = None):
    return self.out(h, ctx)


def make_head(cfg: TransformerConfig, task: str, num_labels: int | None, style: str | None, rngs: nnx.Rngs):
  if task in ("base", "lm"):
    return None
  if task == "regression":
    num_labels = 1
  if task == "qa":
    return TokenHead(cfg, 2, rngs)
  if not num_labels or num_labels <= 0:
    raise ValueError(f"task {task!r} needs num_labels >= 1")
  if task == "token_classification":
    return TokenHead(cfg, num_labels, rngs)
  return ClassificationHead(cfg, num_labels, style or default_head_style(cfg), rngs)
