"""Discrete in-context tasks for language models: prompt strings, answer choices and the correct index.

`associative_recall`: key-value pairs then a query key (the answer is its value). `few_shot_classification`:
k labelled demonstrations from a text dataset then a query, under a label mapping: "gold", "flipped"
(label i shown as label (i+1) mod n, i.e. swapped for binary tasks), "random" (demonstration labels drawn
uniformly, Min et al. 2022) or an explicit list (shown label of each true label). Scoring lives in icl/.
"""

from __future__ import annotations

import dataclasses
import string
from typing import Sequence

import numpy as np

MAPPINGS = ("gold", "flipped", "random")


@dataclasses.dataclass(frozen=True)
class FewShotPrompt:
  """prompt: the text up to where the answer goes; choices: candidate answers (continuations, each with a
  leading space); answer: index of the correct choice."""
  prompt: str
  choices: tuple[str, ...]
  answer: int


def associative_recall(num_prompts: int, *, num_pairs: int = 8, seed: int = 0,
                       keys: Sequence[str] = tuple(string.ascii_lowercase),
                       values: Sequence[str] = tuple(string.digits)) -> list[FewShotPrompt]:
  """Prompts like "c 4 a 7 f 1 a" -> " 7": num_pairs distinct keys with random values, then one of the keys.
  Choices are all `values`; answer is the index of the queried key's value."""
  if num_pairs > len(keys):
    raise ValueError(f"num_pairs={num_pairs} exceeds the {len(keys)} distinct keys")
  rng = np.random.default_rng(seed)
  out = []
  for _ in range(num_prompts):
    ks = rng.choice(len(keys), num_pairs, replace=False)
    vs = rng.integers(0, len(values), num_pairs)
    q = int(rng.integers(num_pairs))
    body = " ".join(f"{keys[k]} {values[v]}" for k, v in zip(ks, vs))
    out.append(FewShotPrompt(f"{body} {keys[ks[q]]}", tuple(f" {v}" for v in values), int(vs[q])))
  return out


def _shown_labels(labels: np.ndarray, mapping, n: int, rng) -> np.ndarray:
  if isinstance(mapping, str):
    if mapping == "gold":
      return labels
    if mapping == "flipped":
      return (labels + 1) % n
    if mapping == "random":
      return rng.integers(0, n, labels.shape)
    raise ValueError(f"label mapping must be one of {MAPPINGS} or a list of {n} label ids, got {mapping!r}")
  table = np.asarray(list(mapping))
  if table.shape != (n,) or not np.all((0 <= table) & (table < n)):
    raise ValueError(f"an explicit label mapping lists one shown label id in [0, {n}) per label, got {mapping}")
  return table[labels]


def few_shot_classification(demos: Sequence[dict], queries: Sequence[dict], *, label_words: Sequence[str],
                            k: int = 4, text_fields: Sequence[str] = ("text",), label_field: str = "label",
                            mapping="gold", query_under_mapping: bool = False, seed: int = 0,
                            input_prefix: str = "Input: ", output_prefix: str = "Label:",
                            separator: str = "\n\n") -> list[FewShotPrompt]:
  """One prompt per query: k demonstrations drawn (without replacement, per query) from `demos`, shown with
  label_words[mapping(label)], then the query. Choices are " " + each label word; the answer is the query's
  gold label, or its mapped label with query_under_mapping=True (as in flipped-label studies; "random" has
  no mapped answer)."""
  n = len(label_words)
  if k > len(demos):
    raise ValueError(f"k={k} demonstrations requested but only {len(demos)} examples to draw from")
  if query_under_mapping and mapping == "random":
    raise ValueError("query_under_mapping needs a deterministic mapping (gold, flipped or a list), not random")
  rng = np.random.default_rng(seed)
  text = lambda e: " ".join(str(e[f]) for f in text_fields)
  choices = tuple(f" {w}" for w in label_words)
  out = []
  for q in queries:
    idx = rng.choice(len(demos), k, replace=False)
    shown = _shown_labels(np.asarray([int(demos[i][label_field]) for i in idx]), mapping, n, rng)
    parts = [f"{input_prefix}{text(demos[i])}\n{output_prefix} {label_words[s]}" for i, s in zip(idx, shown)]
    parts.append(f"{input_prefix}{text(q)}\n{output_prefix}")
    gold = int(q[label_field])
    answer = int(_shown_labels(np.asarray([gold]), mapping, n, rng)[0]) if query_under_mapping else gold
    out.append(FewShotPrompt(separator.join(parts), choices, answer))
  return out
