"""Loss and predictions per task kind, from the model's output dict and a batch.

One function per kind of objective; `lightft_jax.kinds` says which kind uses which (classification,
regression and icl_regression, token_classification / lm / seq2seq share the token cross-entropy, qa).
Each takes (out, batch) and returns (scalar loss, aux) where aux holds `predictions` and the `weight` the
loss was averaged over. Label value `kinds.IGNORE_INDEX` (-100) marks ignored positions. Every loss is a
weighted mean where the optional `batch["weights"]` [B] (0 for padding rows of a last eval batch) weights
examples.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from lightft_jax.kinds import IGNORE_INDEX, get_kind

MAX_ANSWER_TOKENS = 30


def _weights(batch, b: int) -> jax.Array:
  return batch["weights"].astype(jnp.float32) if "weights" in batch else jnp.ones((b,), jnp.float32)


def _token_ce(logits: jax.Array, labels: jax.Array, w: jax.Array):
  """logits [B,T,V], labels [B,T] with -100 ignored -> (sum of weighted CE, weighted token count)."""
  valid = (labels != IGNORE_INDEX).astype(jnp.float32) * w[:, None]
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


def classification(out: dict, batch: dict) -> tuple[jax.Array, dict]:
  """logits [B,C], labels [B] -> mean cross-entropy; predictions: argmax [B]."""
  logits = out["logits"]
  w = _weights(batch, logits.shape[0])
  ce = optax.softmax_cross_entropy_with_integer_labels(logits.astype(jnp.float32), batch["labels"])
  return jnp.sum(ce * w) / jnp.maximum(jnp.sum(w), 1e-9), {"predictions": jnp.argmax(logits, -1),
                                                           "weight": jnp.sum(w)}


def regression(out: dict, batch: dict) -> tuple[jax.Array, dict]:
  """logits [B,1], labels [B] float -> mean squared error; predictions: logits[:, 0] [B]."""
  logits = out["logits"]
  w = _weights(batch, logits.shape[0])
  pred = logits[..., 0].astype(jnp.float32)
  return (jnp.sum(jnp.square(pred - batch["labels"]) * w) / jnp.maximum(jnp.sum(w), 1e-9),
          {"predictions": pred, "weight": jnp.sum(w)})


def span(out: dict, batch: dict) -> tuple[jax.Array, dict]:
  """Extractive QA: logits [B,T,2] (start, end) with start_positions / end_positions [B] -> the mean of the
  start and end cross-entropies; predictions: the best span [B,2] (`best_spans`)."""
  logits = out["logits"]
  w = _weights(batch, logits.shape[0])
  start, end = logits[..., 0].astype(jnp.float32), logits[..., 1].astype(jnp.float32)
  ce = (optax.softmax_cross_entropy_with_integer_labels(start, batch["start_positions"])
        + optax.softmax_cross_entropy_with_integer_labels(end, batch["end_positions"])) / 2
  pred = best_spans(start, end, batch.get("attention_mask"))
  return jnp.sum(ce * w) / jnp.maximum(jnp.sum(w), 1e-9), {"predictions": pred, "weight": jnp.sum(w)}


def token_cross_entropy(out: dict, batch: dict) -> tuple[jax.Array, dict]:
  """Per-token targets (token classification, lm, seq2seq): logits [B,T,V], labels [B,T] already aligned with
  the logits (labels[t] is the target of logits[t], the `lightft_jax.data` convention), so nothing is shifted
  here -> mean cross-entropy over labelled tokens; predictions: argmax [B,T]; weight: the token count."""
  logits = out["logits"]
  w = _weights(batch, logits.shape[0])
  total, count = _token_ce(logits, batch["labels"], w)
  return total / jnp.maximum(count, 1e-9), {"predictions": jnp.argmax(logits, -1), "weight": count}


def verbalized(out: dict, batch: dict) -> tuple[jax.Array, dict]:
  """PET-style classification by a causal LM: logits [B,T,V] at each row's last real token (right padded),
  restricted to the verbalizer tokens `choice_ids` [B,C] -> cross-entropy against class labels [B]; predictions:
  the argmax class [B]."""
  logits = out["logits"]
  w = _weights(batch, logits.shape[0])
  last = jnp.sum(batch["attention_mask"], -1) - 1
  at_last = jnp.take_along_axis(logits, last[:, None, None], 1)[:, 0].astype(jnp.float32)  # [B,V]
  scores = jnp.take_along_axis(at_last, batch["choice_ids"], -1)  # [B,C]
  ce = optax.softmax_cross_entropy_with_integer_labels(scores, batch["labels"])
  return jnp.sum(ce * w) / jnp.maximum(jnp.sum(w), 1e-9), {"predictions": jnp.argmax(scores, -1),
                                                           "weight": jnp.sum(w)}


def loss_and_predictions(kind: str, out: dict, batch: dict) -> tuple[jax.Array, dict]:
  """The loss of task kind `kind` (`kinds.get_kind(kind).loss`): (scalar loss, {"predictions", "weight"})."""
  return get_kind(kind).loss_and_predictions(out, batch)
