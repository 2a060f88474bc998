"""Task kinds: one registry of what each kind of task (classification, regression, NER, QA, seq2seq, LM, ...)
means to the model, the data pipeline, the loss and the evaluation.

A `KindSpec` declares, for one kind:
  head        the model head it trains: `models.Transformer(task=head)` (one of `models.transformer.TASKS`;
              the model knows heads, not task kinds: seq2seq and lm share the "lm" head)
  loss        (model output dict, batch) -> (scalar loss, {"predictions", "weight"})      (`train.losses`)
  evaluator   a class built per evaluation with the keywords `train.evaluate.evaluate` passes; it sees every
              eval batch (`update`) and returns the kind's metrics (`result`)          (`train.evaluate`)
  formatters  model family ("encoder" | "decoder" | "encoder_decoder") -> batch function
              (task, examples, tok, max_length, padding) -> numpy arrays              (`data.formats`)
  packed      True when the pipeline packs whole documents into rows (lm) instead of batching examples
              through a formatter; the formatter then turns one document into a row
  target      (task, example) -> the target text of the text-to-text formats          (`data.tasks`)
  metric_inputs  (task, predictions, references) -> what `task.metrics` scores, when the raw ids need
              converting first (NER: tag ids -> tag strings)                          (`data.tasks`)

`register_kind(KindSpec(...))` adds a kind; everything that branches on a kind (`data.tasks.Task`,
`data.pipeline`, `data.formats.formatter`, `train.losses`, `train.evaluate`, `train.loop`) looks it up with
`get_kind(name)`, so a new kind is one entry here (or one `register_kind` call in user code) plus its
functions, and an unknown kind is an error that lists the known ones.

Why one table of references rather than each piece registering beside itself: the point of the registry is
that a kind is read (and added) in one place. Its pieces still live in the layer they belong to, and the
built-in entries name them as "module:attribute" strings that are imported on first use (as big_vision
names its evaluators), so this module imports nothing from `data/`, `train/` or `models/`: `data/` can
validate kinds without importing JAX training code, `train/` without importing TensorFlow, and no import
cycle runs through here. A spec may also hold the callables themselves (what user code usually does).
"""

from __future__ import annotations

import dataclasses
import importlib
from types import MappingProxyType
from typing import Any, Callable, Mapping, Union

IGNORE_INDEX = -100  # label value of positions (tokens, words) that take no loss and no metric
ANSWER_PREFIX = "\nAnswer:"  # what a decoder prompt ends with before the answer (Task.answer_prefix)

Ref = Union[str, Callable[..., Any]]  # a callable, or "package.module:attribute" naming one


def resolve(ref: Ref) -> Any:
  """A callable as is; "package.module:attribute" -> that attribute (the module imported on first use)."""
  if not isinstance(ref, str):
    return ref
  module, sep, attr = ref.partition(":")
  if not sep or not module or not attr:
    raise ValueError(f"a reference must be a callable or 'package.module:attribute', got {ref!r}")
  return getattr(importlib.import_module(module), attr)


@dataclasses.dataclass(frozen=True)
class KindSpec:
  """Everything one task kind needs; see the module docstring for each field."""
  name: str
  head: str
  loss: Ref
  evaluator: Ref
  formatters: Mapping[str, Ref] = dataclasses.field(default_factory=dict)
  packed: bool = False
  target: Ref | None = None
  metric_inputs: Ref | None = None

  def __post_init__(self):
    object.__setattr__(self, "formatters", MappingProxyType(dict(self.formatters)))

  def loss_and_predictions(self, out: dict, batch: dict):
    return resolve(self.loss)(out, batch)

  def make_evaluator(self, **kwargs):
    return resolve(self.evaluator)(**kwargs)

  def formatter(self, family: str) -> Callable:
    """The batch function for model family `family`; an unknown family or one this kind has no format for
    raises with the options."""
    from lightft_jax.models.config import ARCHS
    if family not in ARCHS:
      raise ValueError(f"model_family must be one of {ARCHS}, got {family!r}")
    if family not in self.formatters:
      raise ValueError(f"task kind {self.name!r} cannot be formatted for model_family={family!r}; supported: "
                       f"{sorted(self.formatters)}")
    return resolve(self.formatters[family])

  def target_text(self, task, example: dict) -> str:
    if self.target is None:
      raise ValueError(f"task kind {self.name!r} has no text target")
    return resolve(self.target)(task, example)

  def prepare_metrics(self, task, predictions, references):
    if self.metric_inputs is None:
      return predictions, references
    return resolve(self.metric_inputs)(task, predictions, references)


_KINDS: dict[str, KindSpec] = {}


def register_kind(spec: KindSpec, *, replace: bool = False) -> KindSpec:
  """Adds `spec` under `spec.name` (an existing name is an error unless `replace`). Returns `spec`."""
  if spec.name in _KINDS and not replace:
    raise ValueError(f"task kind {spec.name!r} is already registered; pass replace=True to redefine it")
  _KINDS[spec.name] = spec
  return spec


def unregister_kind(name: str) -> None:
  """Removes a registered kind (tests and notebooks that register a kind for a while)."""
  _KINDS.pop(name, None)


def get_kind(name: str) -> KindSpec:
  """The KindSpec registered under `name`; ValueError listing the known kinds."""
  if name not in _KINDS:
    raise ValueError(f"unknown task kind {name!r}; known kinds: {known_kinds()}")
  return _KINDS[name]


def known_kinds() -> list[str]:
  return list(_KINDS)


# ---------------------------------------------------------------------------------------------------------
# Built-in kinds

_F, _L, _E, _T = "lightft_jax.data.formats:", "lightft_jax.train.losses:", "lightft_jax.train.evaluate:", \
    "lightft_jax.data.tasks:"
_TEXT_TO_TEXT = {"decoder": _F + "decoder_text_to_text", "encoder_decoder": _F + "seq2seq_text_to_text"}

register_kind(KindSpec("classification", head="classification", loss=_L + "classification",
                       evaluator=_E + "ClassMetrics",
                       formatters={"encoder": _F + "encoder_classification", **_TEXT_TO_TEXT},
                       target=_T + "label_word"))
register_kind(KindSpec("regression", head="regression", loss=_L + "regression", evaluator=_E + "LabelMetrics",
                       formatters={"encoder": _F + "encoder_regression", **_TEXT_TO_TEXT},
                       target=_T + "label_number"))
register_kind(KindSpec("token_classification", head="token_classification", loss=_L + "token_cross_entropy",
                       evaluator=_E + "LabelMetrics",
                       formatters={"encoder": _F + "encoder_token_classification"},
                       metric_inputs=_T + "tag_sequences"))
register_kind(KindSpec("qa", head="qa", loss=_L + "span", evaluator=_E + "SpanMetrics",
                       formatters={"encoder": _F + "encoder_qa", **_TEXT_TO_TEXT}, target=_T + "first_answer"))
register_kind(KindSpec("seq2seq", head="lm", loss=_L + "token_cross_entropy", evaluator=_E + "TextMetrics",
                       formatters=_TEXT_TO_TEXT, target=_T + "target_field"))
register_kind(KindSpec("lm", head="lm", loss=_L + "token_cross_entropy", evaluator=_E + "Perplexity",
                       formatters={"decoder": _F + "lm_document"}, packed=True))
# PET-style prompt-based fine-tuning of a causal LM on a classification task (`task.kind="verbalized"`): the
# template's prompt, the LM head's logits of the verbalizer tokens at the last token as class scores.
register_kind(KindSpec("verbalized", head="lm", loss=_L + "verbalized", evaluator=_E + "ClassMetrics",
                       formatters={"decoder": _F + "decoder_verbalized"}))
# In-context regression (Garg et al.): batches come from `data.icl_synthetic`, not from a formatter.
register_kind(KindSpec("icl_regression", head="regression", loss=_L + "regression", evaluator=_E + "LabelMetrics"))
