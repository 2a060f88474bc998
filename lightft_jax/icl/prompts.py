"""Few-shot prompts: a template per task, k demonstrations, their selection, order and label ablations.

A prompt is `instruction + demo_1 + sep + ... + demo_k + sep + query`, where a demonstration is
`input_template.format(**example) + label_delimiter + verbalizer[label]` and the query stops right
after its input (the answer choices carry the label delimiter, so " positive" is scored after
"Sentiment:").
"""

from __future__ import annotations

import dataclasses
import hashlib
import string
from typing import Sequence

import numpy as np

SELECTIONS = ("random", "balanced", "knn")
LABEL_MODES = ("gold", "random", "flipped")  # and "corrupt_P" (P = 0..100): see demonstration_labels
ORDERS = ("as_selected", "random", "reverse", "by_label")


def template_fields(template: str) -> list[str]:
  """Names of the `{field}` placeholders of a str.format template."""
  return [name for _, name, _, _ in string.Formatter().parse(template) if name]


@dataclasses.dataclass(frozen=True)
class PromptTemplate:
  """How one example and one answer are written.

  input_template: str.format template over the example's text fields, e.g. "Review: {text}\\nSentiment:".
  verbalizers: the answer text of each label id (label i is written verbalizers[i]); None for
    generation tasks, whose answers come from `answer_field`.
  """

  input_template: str
  verbalizers: tuple[str, ...] | None = None
  label_delimiter: str = " "
  example_delimiter: str = "\n\n"
  instruction: str = ""
  answer_field: str = "label"

  def __post_init__(self):
    if not template_fields(self.input_template):
      raise ValueError(f"input_template {self.input_template!r} has no {{field}} placeholder; it must name "
                       "the example's text fields, e.g. 'Review: {text}\\nSentiment:'")

  def check_example(self, example: dict):
    missing = [f for f in template_fields(self.input_template) if f not in example]
    if missing:
      raise ValueError(f"input_template {self.input_template!r} uses fields {missing} that the example "
                       f"does not have; available fields: {sorted(example)}")

  def format_input(self, example: dict) -> str:
    self.check_example(example)
    return self.input_template.format(**example)

  def answer(self, example: dict, label: int | None = None) -> str:
    """The answer text (with its leading label delimiter) for `label`, or the example's own answer."""
    if self.verbalizers is None:
      return self.label_delimiter + str(example[self.answer_field])
    label = int(example[self.answer_field]) if label is None else int(label)
    return self.label_delimiter + self.verbalizers[label]

  def choices(self) -> list[str]:
    """Answer choices of a choice-scored task, in label order."""
    if not self.verbalizers:
      raise ValueError("this template has no verbalizers, so it has no answer choices to score; set "
                       "verbalizers (one answer text per label) or evaluate the task by generation")
    return [self.label_delimiter + v for v in self.verbalizers]

  def content_free_answer_context(self) -> str:
    """The template's text after its last field ("Sentiment:"), the domain premise for PMI scoring."""
    tail = self.input_template
    for field in template_fields(tail):
      tail = tail.split("{" + field + "}")[-1]
    return tail.strip() or self.input_template.format(**{f: "" for f in template_fields(self.input_template)})

  def build(self, demos: Sequence[dict], query: dict, demo_labels: Sequence[int] | None = None) -> str:
    """The prompt text for `query` after `demos` (answered with `demo_labels` when given)."""
    labels = [None] * len(demos) if demo_labels is None else list(demo_labels)
    parts = [self.format_input(d) + self.answer(d, y) for d, y in zip(demos, labels)]
    parts.append(self.format_input(query))
    return self.instruction + self.example_delimiter.join(parts)


def select_demonstrations(method: str, pool: Sequence[dict], k: int, rng: np.random.Generator, *,
                          label_key: str = "label", query_embedding: np.ndarray | None = None,
                          pool_embeddings: np.ndarray | None = None, exclude: int | None = None) -> list[int]:
  """Indices of k demonstrations from `pool`.

  random: uniform without replacement. balanced: round-robin over classes (each class as equal as k
  allows), then shuffled. knn: the k most cosine-similar pool examples to the query (embeddings
  [D] and [N,D]), ordered least to most similar so the nearest sits next to the query.
  `exclude` removes one pool index (the query itself when it comes from the pool).
  """
  if method not in SELECTIONS:
    raise ValueError(f"unknown demonstration selection {method!r}; choose from {SELECTIONS}")
  candidates = np.array([i for i in range(len(pool)) if i != exclude], dtype=np.int64)
  if k > len(candidates):
    raise ValueError(f"k={k} demonstrations requested but the pool has only {len(candidates)} examples")
  if k == 0:
    return []
  if method == "random":
    return [int(i) for i in rng.choice(candidates, size=k, replace=False)]
  if method == "balanced":
    labels = np.array([int(pool[i][label_key]) for i in candidates])
    per_class = [list(rng.permutation(candidates[labels == c])) for c in np.unique(labels)]
    class_order = rng.permutation(len(per_class)).tolist()
    chosen: list[int] = []
    while len(chosen) < k:  # round-robin; terminates because the pool holds at least k examples
      for c in class_order:
        if per_class[c] and len(chosen) < k:
          chosen.append(int(per_class[c].pop()))
    return [int(i) for i in rng.permutation(chosen)]
  if query_embedding is None or pool_embeddings is None:
    raise ValueError("knn selection needs query_embedding [D] and pool_embeddings [N,D]")
  sims = _normalise(pool_embeddings[candidates]) @ _normalise(query_embedding[None])[0]
  top = candidates[np.argsort(-sims, kind="stable")[:k]]
  return [int(i) for i in top[::-1]]


def _normalise(x: np.ndarray) -> np.ndarray:
  return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def order_demonstrations(indices: list[int], order: str, rng: np.random.Generator, labels: Sequence[int]):
  """Reorders selected demonstration indices: as_selected | random | reverse | by_label (labels: pool labels)."""
  if order not in ORDERS:
    raise ValueError(f"unknown demonstration order {order!r}; choose from {ORDERS}")
  if order == "random":
    return [indices[i] for i in rng.permutation(len(indices))]
  if order == "reverse":
    return indices[::-1]
  if order == "by_label":
    return sorted(indices, key=lambda i: int(labels[i]))
  return list(indices)


def corruption_percent(mode: str) -> int | None:
  """P of a "corrupt_P" label mode (0..100), None for any other mode."""
  if not (isinstance(mode, str) and mode.startswith("corrupt_")):
    return None
  tail = mode[len("corrupt_"):]
  if not tail.isdigit() or not 0 <= int(tail) <= 100:
    raise ValueError(f"label mode {mode!r}: corrupt_P needs an integer percentage P in 0..100, e.g. corrupt_25")
  return int(tail)


def demonstration_labels(true_labels: Sequence[int], mode: str, num_labels: int,
                         rng: np.random.Generator) -> list[int]:
  """Labels shown with the demonstrations: gold, uniformly random (Min et al. 2022), flipped (y+1 mod C), or
  corrupt_P: round(P/100 * k) of the k demonstrations, at positions drawn without replacement, show a label
  drawn uniformly from the *other* labels and the rest their gold label (Min et al. 2022, Sec. 5.1, "a% correct"
  with a = 100 - P). With two labels an incorrect label is the flipped one; corrupt_0 is gold, corrupt_100
  is all incorrect. corrupt_P draws from a generator seeded by `rng`'s current state and leaves `rng` where it
  was, so gold and every corrupt_P see the same demonstrations, also when each query gets its own set."""
  y = np.asarray(true_labels, dtype=np.int64)
  percent = corruption_percent(mode)
  if percent is not None:
    n_wrong = int(round(percent / 100 * len(y)))
    if n_wrong and num_labels < 2:
      raise ValueError(f"label mode {mode!r} needs at least two labels to show an incorrect one")
    if n_wrong:
      digest = hashlib.sha256(repr(rng.bit_generator.state).encode()).digest()
      own = np.random.default_rng(np.frombuffer(digest, dtype=np.uint32))
      wrong = own.choice(len(y), size=n_wrong, replace=False)
      y = y.copy()
      y[wrong] = (y[wrong] + own.integers(1, num_labels, size=n_wrong)) % num_labels
    return [int(v) for v in y]
  if mode not in LABEL_MODES:
    raise ValueError(f"unknown demonstration label mode {mode!r}; choose from {LABEL_MODES} or corrupt_P "
                     "(P = 0..100, the percentage of demonstrations with an incorrect label)")
  if mode == "random":
    y = rng.integers(0, num_labels, size=len(y))
  elif mode == "flipped":
    y = (y + 1) % num_labels
  return [int(v) for v in y]
