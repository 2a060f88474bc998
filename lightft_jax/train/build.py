"""Model and tokenizer from the `model` config section: a preset name or a local HF checkpoint directory."""

from __future__ import annotations

from pathlib import Path

import ml_collections
from flax import nnx

from lightft_jax.models import PRESETS, Transformer, get_preset
from lightft_jax.models.tokenizer import Tokenizer


def is_checkpoint_dir(name: str) -> bool:
  return name not in PRESETS and (Path(name).is_dir() or Path(name).suffix == ".gguf")


def build_model(mcfg: ml_collections.ConfigDict, *, task: str, num_labels: int | None, seed: int) -> Transformer:
  """Preset (random init from `seed`, with `model.overrides`) or `models.from_pretrained(dir)`.

  `model.head_style` (optional): the sequence-classification pooling (models.heads.HEAD_STYLES).
  """
  overrides = dict(mcfg.overrides)
  head_style = mcfg.get("head_style") or None  # "" / absent: the architecture's own pooling
  if is_checkpoint_dir(mcfg.name):
    from lightft_jax.models.hf import from_pretrained
    return from_pretrained(mcfg.name, task=task, num_labels=num_labels, dtype=mcfg.dtype, seed=seed,
                           head_style=head_style, **overrides)
  if mcfg.name not in PRESETS:
    raise ValueError(f"model.name {mcfg.name!r} is neither a preset ({sorted(PRESETS)}) nor an existing "
                     f"checkpoint directory")
  cfg = get_preset(mcfg.name, dtype=mcfg.dtype, **overrides)
  return Transformer(cfg, task=task, num_labels=num_labels, head_style=head_style, rngs=nnx.Rngs(seed))


def build_tokenizer(mcfg: ml_collections.ConfigDict) -> Tokenizer:
  """`model.tokenizer` if set, else the checkpoint directory's tokenizer."""
  path = mcfg.tokenizer or (mcfg.name if is_checkpoint_dir(mcfg.name) else "")
  if not path:
    raise ValueError(f"model {mcfg.name!r} is a preset without a tokenizer; set model.tokenizer to a "
                     f"tokenizer.json file or a directory holding one")
  from lightft_jax.models.hf import load_tokenizer
  return load_tokenizer(path)
