"""Architectures, one module each: everything lightft_jax knows about one Hugging Face `model_type`.

Each module (bert, roberta, gpt2, llama, mistral, t5) defines `ARCH`, an `archs.base.Architecture`: the
family's TransformerConfig defaults and named presets, the config.json <-> TransformerConfig mapping, the
weight-name rules (our parameter path, HF tensor name, layout kind) and the `transformers` class per task.
`models/hf.py` (checkpoint load/save), `models/config.py` (PRESETS) and `peft/hf_io.py` read them through
`get_arch(model_type)`. A new architecture is one module here, one entry in `_MODULES` and a parity test.
"""

from __future__ import annotations

from typing import Any

from lightft_jax.models.archs import bert, gpt2, llama, mistral, roberta, t5
from lightft_jax.models.archs.base import Architecture, HFClass, Rule, convert

_MODULES = (bert, roberta, gpt2, llama, mistral, t5)
_REGISTRY: dict[str, Architecture] = {m.ARCH.model_type: m.ARCH for m in _MODULES}
MODEL_TYPES: tuple[str, ...] = tuple(_REGISTRY)


def get_arch(model_type: str | None) -> Architecture:
  """The Architecture of an HF `model_type`; ValueError listing the supported ones."""
  if model_type not in _REGISTRY:
    raise ValueError(f"unsupported model_type {model_type!r}; supported: {list(MODEL_TYPES)}")
  return _REGISTRY[model_type]


def preset_fields() -> dict[str, dict[str, Any]]:
  """Every architecture's presets: name -> TransformerConfig fields (family defaults + the preset's own)."""
  out: dict[str, dict[str, Any]] = {}
  for arch in _REGISTRY.values():
    for name, fields in arch.presets.items():
      if name in out:
        raise ValueError(f"model preset {name!r} is defined twice")
      out[name] = {**arch.defaults, **fields}
  return out


def base_prefixes() -> tuple[str, ...]:
  """Base-model prefixes of every HF class ("" first, then "bert.", "roberta.", "transformer.", "model.")."""
  return tuple(dict.fromkeys([""] + [c.prefix for a in _REGISTRY.values() for c in a.classes.values()]))


__all__ = ["Architecture", "HFClass", "MODEL_TYPES", "Rule", "base_prefixes", "convert", "get_arch", "preset_fields"]
