"""Model and tokenizer from the `model` config section, for every job: a preset name, a local HF checkpoint
directory or .gguf file, or an alias of a bundled asset (`ALIASES`: smollm2, minilm)."""

from __future__ import annotations

from pathlib import Path

import ml_collections
from flax import nnx

from lightft_jax.models import PRESETS, Transformer, get_preset
from lightft_jax.models.tokenizer import Tokenizer


ALIASES = {"smollm2": "smollm2_gguf", "minilm": "minilm_dir"}  # name -> function of lightft_jax.models.assets


def resolve_name(name: str) -> str:
  """An alias of a bundled asset -> its path; anything else unchanged."""
  if name in ALIASES:
    from lightft_jax.models import assets
    return str(getattr(assets, ALIASES[name])())
  return name


def is_checkpoint_dir(name: str) -> bool:
  name = resolve_name(name)
  return name not in PRESETS and (Path(name).is_dir() or Path(name).suffix == ".gguf")


def build_model(mcfg: ml_collections.ConfigDict, *, task: str, num_labels: int | None = None, seed: int = 0,
                vocab_size: int | None = None) -> Transformer:
  """Preset (random init from `seed`, with `model.overrides`; `vocab_size` unless the overrides set one) or
  `models.from_pretrained(dir or .gguf)`.

  `model.head_style` (optional): the sequence-classification pooling (models.heads.HEAD_STYLES).
  `model.quantize` (optional, "int8" | "nf4"): the projections inside the blocks are stored blockwise-quantized
  and stay frozen (QLoRA-style; `models.quant`).
  """
  overrides = dict(mcfg.overrides)
  head_style = mcfg.get("head_style") or None  # "" / absent: the architecture's own pooling
  quantize = mcfg.get("quantize") or None
  name = resolve_name(mcfg.name)
  if is_checkpoint_dir(name):
    from lightft_jax.models.hf import from_pretrained
    return from_pretrained(name, task=task, num_labels=num_labels, dtype=mcfg.dtype, seed=seed,
                           head_style=head_style, quantize=quantize, **overrides)
  if name not in PRESETS:
    raise ValueError(f"model.name {mcfg.name!r} is neither a preset ({sorted(PRESETS)}), an alias "
                     f"({sorted(ALIASES)}) nor an existing checkpoint directory or .gguf file")
  if vocab_size is not None:
    overrides.setdefault("vocab_size", vocab_size)
  cfg = get_preset(name, dtype=mcfg.dtype, **overrides)
  model = Transformer(cfg, task=task, num_labels=num_labels, head_style=head_style, rngs=nnx.Rngs(seed))
  from lightft_jax.models.quant import quantize_model
  return quantize_model(model, quantize)


def build_tokenizer(mcfg: ml_collections.ConfigDict) -> Tokenizer:
  """`model.tokenizer` if set, else the checkpoint directory's tokenizer."""
  path = mcfg.tokenizer or (resolve_name(mcfg.name) if is_checkpoint_dir(mcfg.name) else "")
  if not path:
    raise ValueError(f"model {mcfg.name!r} is a preset without a tokenizer; set model.tokenizer to a "
                     f"tokenizer.json file or a directory holding one")
  from lightft_jax.models.hf import load_tokenizer
  return load_tokenizer(path)
