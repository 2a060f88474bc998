"""What an architecture module declares (`Architecture`, `HFClass`) and the helpers its rules are written with.

A weight rule is (our parameter path, HF tensor name, kind). Kind "linear" transposes a torch Linear
[out, in] to our Dense kernel [in, out]; "copy" keeps the layout (embeddings, norms, biases, GPT-2 Conv1D,
which is already [in, out]). Layer rules carry `{i}` and are expanded by `layers(n, rules)`.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any, Callable, Mapping

import numpy as np

if TYPE_CHECKING:
  from lightft_jax.models.config import TransformerConfig

Rule = tuple[str, str, str]  # (our parameter path, HF tensor name, kind: "linear" | "copy")

# HF activation name -> TransformerConfig.activation, and back.
ACTIVATIONS = {"gelu": "gelu", "gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh", "relu": "relu",
               "silu": "silu", "swish": "silu"}
HF_ACTIVATIONS = {"gelu": "gelu", "gelu_tanh": "gelu_new", "relu": "relu", "silu": "silu"}


def activation(name: str) -> str:
  """HF activation name -> ours, with an error listing the supported ones."""
  if name not in ACTIVATIONS:
    raise ValueError(f"unsupported activation {name!r}; supported: {sorted(ACTIVATIONS)}")
  return ACTIVATIONS[name]


def dropout_fields(hf: dict, hidden_key: str | None, hidden_default: float, attention_key: str | None = None,
                   attention_default: float = 0.0) -> dict:
  """`dropout` (embeddings, residual branches, stack output) from the HF config's hidden-state dropout `hidden_key`
  and `attention_dropout` (attention probabilities) from `attention_key`, each HF's class default when the key
  is absent (None: the architecture has none, the rate is the default). `model.overrides` (from_pretrained's
  overrides) win, e.g. {"dropout": 0.0, "attention_dropout": 0.0}."""
  rates = {}
  for field, key, default in (("dropout", hidden_key, hidden_default),
                              ("attention_dropout", attention_key, attention_default)):
    rate = hf.get(key) if key else None
    rate = float(default if rate is None else rate)
    if not 0.0 <= rate < 1.0:
      raise ValueError(f"{key}={rate} in config.json is not a dropout rate in [0, 1)")
    rates[field] = rate
  return rates


def first(x):
  """HF configs sometimes give a list where we keep one id (eos_token_id=[1, 2]): the first."""
  return x[0] if isinstance(x, (list, tuple)) else x


# ---------------------------------------------------------------------------------------------- rules

def dense(ours: str, theirs: str, bias: bool = True, kind: str = "linear") -> list[Rule]:
  bias_rule = [(f"{ours}.bias", f"{theirs}.bias", "copy")] if bias else []
  return [(f"{ours}.kernel", f"{theirs}.weight", kind)] + bias_rule


def norm(ours: str, theirs: str, bias: bool = True) -> list[Rule]:
  bias_rule = [(f"{ours}.bias", f"{theirs}.bias", "copy")] if bias else []
  return [(f"{ours}.scale", f"{theirs}.weight", "copy")] + bias_rule


def embed(ours: str, theirs: str) -> list[Rule]:
  return [(f"{ours}.embedding", theirs, "copy")]


def layers(n: int, rules: list[Rule]) -> list[Rule]:
  """Rules with `{i}` -> one copy per layer 0..n-1."""
  return [(o.format(i=i), t.format(i=i), k) for i in range(n) for o, t, k in rules]


def convert(x: np.ndarray, kind: str) -> np.ndarray:
  """HF layout <-> ours for a tensor of rule kind `kind` (the same operation both ways)."""
  return x.T if kind == "linear" else x


# ---------------------------------------------------------------------------------------------- declaration

@dataclasses.dataclass(frozen=True)
class HFClass:
  """A `transformers` class for one task: its name, the prefix its checkpoints put before base-model
  tensor names ("bert.", "model.", "transformer." or ""), and the rules of its task head."""

  name: str
  prefix: str = ""
  head: tuple[Rule, ...] = ()


def _no_fields(*_) -> dict:
  return {}


@dataclasses.dataclass(frozen=True)
class Architecture:
  """Everything lightft_jax knows about one HF `model_type`.

  defaults:          TransformerConfig fields every model of the family has (arch, norms, positions, ...).
  presets:           preset name -> fields over `defaults` (`lightft_jax.models.PRESETS` gathers them).
  base_preset:       the preset `config_from_hf` starts from (for whatever config.json does not say).
  config_fields:     (HF config key, TransformerConfig field) pairs copied one to one, both directions.
  from_hf(hf):       the other TransformerConfig fields, from an HF config dict (raises on unsupported options).
  to_hf(cfg):        the other HF config keys, from a TransformerConfig.
  body(cfg):         weight rules of the base model, HF names without the task class's prefix.
  classes:           task -> HFClass (base, lm, classification, token_classification, qa, regression).
  head_style:        `models.heads` style of the classification heads (bert, roberta, last_token) or None.
  checkpoint_fields: (cfg, task, tensor names, prefix, head style) -> fields the checkpoint's tensors (and
                     the chosen head) decide (T5: tied head when there is no lm_head; BERT: pooler).
  conv1d:            HF stores linear weights [in, out] (GPT-2 Conv1D); HF peft calls this fan_in_fan_out.
  """

  model_type: str
  defaults: Mapping[str, Any]
  presets: Mapping[str, Mapping[str, Any]]
  base_preset: str
  config_fields: tuple[tuple[str, str], ...]
  from_hf: Callable[[dict], dict]
  to_hf: Callable[["TransformerConfig"], dict]
  body: Callable[["TransformerConfig"], list[Rule]]
  classes: Mapping[str, HFClass]
  head_style: str | None = None
  checkpoint_fields: Callable[["TransformerConfig", str, set[str], str, str | None], dict] = _no_fields
  conv1d: bool = False

  @property
  def tasks(self) -> list[str]:
    return list(self.classes)

  def hf_class(self, task: str) -> HFClass:
    if task not in self.classes:
      raise ValueError(f"task {task!r} is not supported for {self.model_type} checkpoints; supported: {self.tasks}")
    return self.classes[task]

  def rules(self, cfg: "TransformerConfig", task: str, prefix: str | None = None) -> list[Rule]:
    """Every (our path, HF name, kind) of a model of this config and task: the body's HF names behind
    `prefix` (default: the task class's), then the head's."""
    cls = self.hf_class(task)
    prefix = cls.prefix if prefix is None else prefix
    return [(o, prefix + t, k) for o, t, k in self.body(cfg)] + list(cls.head)

  def module_names(self, cfg: "TransformerConfig", task: str) -> dict[str, str]:
    """Our module path -> HF module name in the task class (e.g. 'encoder.layers.0.attn.query' ->
    'bert.encoder.layer.0.attention.self.query')."""
    out = {}
    for ours, theirs, _ in self.rules(cfg, task):
      if ours.endswith(".bias"):
        continue
      out[ours.rpartition(".")[0]] = theirs[: -len(".weight")] if theirs.endswith(".weight") else theirs
    return out
