"""Loss and predictions per task kind, from the model's output dict and a batch.

Kinds follow `data` tasks: classification, regression, token_classification, qa, lm, seq2seq,
icl_regression. Label value -100 marks ignored positions. Every loss is a weighted mean where the
optional `batch["weights"]` [B] (0 for padding rows of a last eval batch) weights examples.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

KINDS = ("classification", "regression", "token_classification", "qa", "lm", "seq2seq", "icl_regression")
IGNORE = -100
MAX_ANSWER_TOKENS = 30

MODEL_TASK = {"classification": "classification", "regression": "regression",
              "token_classification": "token_classification", "qa": "qa", "lm": "lm", "seq2seq": "lm",
              "icl_regression": "regression"}


def _weights(batch, b: int) -> jax.Array:
  return batch["weights"].astype(jnp.float32) if "weights" in batch else jnp.ones((b,), jnp.float32)


def _token_ce(logits: jax.Array, labels: jax.Array, w: jax.Array):
  """logits [B,T,V], labels [B,T] with -100 ignored -> (sum of weighted CE, weighted token count)."""
  valid = (labels != IGNORE).astype(jnp.float32) * w[:, None]
  ce = optax.softmax_cross_entropy_with_integer_labels(logits.astype(jnp.float32), jnp.maximum(labels, 0))
  return jnp.sum(ce * valid), jnp.sum(valid)


def best_spans(start: jax.Array, end: jax.Array, mask: jax.Array | None = None,
               max_len: int = MAX_ANSWER_TOKENS) -> jax.Array:
  """start, end [B,T] logits -> int [B,2] (s, e) maximising start[s] + end[e] over s <= e < s + max_len,
  both inside `mask` [B,T] (1 = real token) when given."""
  t = start.shape[-1]
  i, j = jnp.arange(t)[:, None], jnp.arange(t)[None, :]
  ok = (j >= i) & (j < i + max_len)
  if mask is not None:
    ok = ok & (mask[:, :, None] > 0) & (mask[:, None, :] > 0)
  scores = jnp.where(ok, start[:, :, None] + end[:, None, :], -jnp.inf)
  flat = jnp.argmax(scores.reshape(scores.shape[0], -1), -1)
  return jnp.stack([flat // t, flat % t], -1).astype(jnp.int32)


def loss_and_predictions(kind: str, out: dict, batch: dict) -> tuple[jax.Array, dict]:
  """Returns (scalar loss, aux) where aux holds `predictions` and the `weight` the loss was averaged over.

  classification: logits [B,C], labels [B] -> argmax [B]. regression: logits [B,1], labels [B] float -> [B].
  token_classification: logits [B,T,C], labels [B,T] -> argmax [B,T]. qa: logits [B,T,2] with
  start_positions/end_positions [B] -> the best span [B,2] (`best_spans`). lm and seq2seq: labels [B,T] are already aligned with the
  logits (labels[t] is the target of logits[t], the `lightft_jax.data` convention), so nothing is shifted here.
  """
  if kind not in KINDS:
    raise ValueError(f"unknown task kind {kind!r}; choose from {KINDS}")
  logits = out["logits"]
  w = _weights(batch, logits.shape[0])
  denom = jnp.maximum(jnp.sum(w), 1e-9)
  if kind == "classification":
    ce = optax.softmax_cross_entropy_with_integer_labels(logits.astype(jnp.float32), batch["labels"])
    return jnp.sum(ce * w) / denom, {"predictions": jnp.argmax(logits, -1), "weight": jnp.sum(w)}
  if kind in ("regression", "icl_regression"):
    pred = logits[..., 0].astype(jnp.float32)
    return jnp.sum(jnp.square(pred - batch["labels"]) * w) / denom, {"predictions": pred, "weight": jnp.sum(w)}
  if kind == "qa":
    start, end = logits[..., 0].astype(jnp.float32), logits[..., 1].astype(jnp.float32)
    ce = (optax.softmax_cross_entropy_with_integer_labels(start, batch["start_positions"])
          + optax.softmax_cross_entropy_with_integer_labels(end, batch["end_positions"])) / 2
    pred = best_spans(start, end, batch.get("attention_mask"))
    return jnp.sum(ce * w) / denom, {"predictions": pred, "weight": jnp.sum(w)}
  labels = batch["labels"]
  total, count = _token_ce(logits, labels, w)
  return total / jnp.maximum(count, 1e-9), {"predictions": jnp.argmax(logits, -1), "weight": count}
