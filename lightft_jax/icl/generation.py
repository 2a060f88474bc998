"""Generation-scored few-shot tasks: greedy continuations cut at the first stop sequence."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from lightft_jax.icl.scoring import _round_up, bucket_length, common_prefix_length
from lightft_jax.models.generate import generate, prefix_cache
from lightft_jax.models.tokenizer import Tokenizer
from lightft_jax.models.transformer import Transformer


def cut_at_stop(text: str, stop_sequences: Sequence[str]) -> str:
  """`text` up to (not including) the earliest of `stop_sequences`."""
  end = min([i for i in (text.find(s) for s in stop_sequences if s) if i >= 0], default=len(text))
  return text[:end]


def generate_answers(model: Transformer, tokenizer: Tokenizer, contexts: Sequence[Sequence[int]], *,
                     stop_sequences: Sequence[str] = ("\n",), max_new_tokens: int = 16,
                     batch_size: int = 8, min_prefix: int = 16, prefix_bucket: int = 64) -> list[str]:
  """Greedy answers (stripped, cut at the first stop sequence) for N token-id contexts.

  As in `scoring.score_choices`: the token prefix shared by all contexts (at least `min_prefix` tokens: the
  demonstrations) runs once into a KV cache that every batch starts from, and contexts are sorted by length
  into batches left padded to `bucket_length` of their longest. Answers come back in input order.
  """
  stop_tokens = () if tokenizer.eos_token_id is None else (tokenizer.eos_token_id,)
  contexts = [[int(t) for t in c] for c in contexts]
  p = min(common_prefix_length(contexts), min(map(len, contexts)) - 1) if len(contexts) > 1 else 0
  prefix = None
  pb = _round_up(p, prefix_bucket)
  fits = model.cfg.position not in ("learned", "rope") or \
      pb + bucket_length(max(map(len, contexts)) - p) + max_new_tokens - 1 <= model.cfg.max_positions
  if p >= min_prefix and fits:
    prefix = prefix_cache(model, contexts[0][:p], slots=pb)
  else:
    p = 0
  suffixes = [c[p:] for c in contexts]
  order = sorted(range(len(contexts)), key=lambda i: len(suffixes[i]))
  answers: list[str | None] = [None] * len(contexts)
  for start in range(0, len(contexts), batch_size):
    rows = order[start:start + batch_size]
    longest = max(len(suffixes[i]) for i in rows)
    t = bucket_length(longest)
    if model.cfg.position in ("learned", "rope") and pb * (prefix is not None) + t + max_new_tokens - 1 > \
        model.cfg.max_positions:
      t = longest  # a bucket would overrun the model's positions; the exact length fits
    ids = np.full((batch_size, t), tokenizer.pad_token_id, np.int32)
    mask = np.zeros((batch_size, t), np.int32)
    for r, i in enumerate(rows):
      ids[r, t - len(suffixes[i]):], mask[r, t - len(suffixes[i]):] = suffixes[i], 1
    mask[len(rows):, -1] = 1
    out = np.asarray(generate(model, ids, mask, max_new_tokens=max_new_tokens, stop_tokens=stop_tokens,
                              pad_token_id=tokenizer.pad_token_id, prefix=prefix))
    for r, i in enumerate(rows):
      answers[i] = cut_at_stop(tokenizer.decode(out[r]), stop_sequences).strip()
  return answers
