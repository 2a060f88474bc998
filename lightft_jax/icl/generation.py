"""Generation-scored few-shot tasks: greedy continuations cut at the first stop sequence."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from lightft_jax.models.generate import generate
from lightft_jax.models.tokenizer import Tokenizer
from lightft_jax.models.transformer import Transformer


def cut_at_stop(text: str, stop_sequences: Sequence[str]) -> str:
  """`text` up to (not including) the earliest of `stop_sequences`."""
  end = min([i for i in (text.find(s) for s in stop_sequences if s) if i >= 0], default=len(text))
  return text[:end]


def generate_answers(model: Transformer, tokenizer: Tokenizer, contexts: Sequence[Sequence[int]], *,
                     stop_sequences: Sequence[str] = ("\n",), max_new_tokens: int = 16,
                     batch_size: int = 8) -> list[str]:
  """Greedy answers (stripped, cut at the first stop sequence) for N token-id contexts."""
  stop_tokens = () if tokenizer.eos_token_id is None else (tokenizer.eos_token_id,)
  answers = []
  for start in range(0, len(contexts), batch_size):
    chunk = contexts[start:start + batch_size]
    t = max(len(c) for c in chunk)
    ids = np.full((batch_size, t), tokenizer.pad_token_id, np.int32)
    mask = np.zeros((batch_size, t), np.int32)
    for r, c in enumerate(chunk):
      ids[r, t - len(c):], mask[r, t - len(c):] = c, 1
    mask[len(chunk):, -1] = 1
    out = np.asarray(generate(model, ids, mask, max_new_tokens=max_new_tokens, stop_tokens=stop_tokens,
                              pad_token_id=tokenizer.pad_token_id))
    for r in range(len(chunk)):
      answers.append(cut_at_stop(tokenizer.decode(out[r]), stop_sequences).strip())
  return answers
