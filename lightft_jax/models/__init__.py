"""Flax NNX Transformer family, heads, generation and Hugging Face checkpoint import/export.

  config.py       TransformerConfig (one config for every architecture) and PRESETS
  layers.py, transformer.py, heads.py, generate.py   the model, read top to bottom
  archs/          one module per HF architecture (bert, roberta, gpt2, llama, mistral, t5): its presets,
                  config.json <-> TransformerConfig mapping, weight-name rules and HF class per task;
                  `archs.get_arch(model_type)` is the registry that hf.py and peft/hf_io.py read
  hf.py           from_pretrained / save_pretrained: the architecture-independent checkpoint machinery
  gguf.py         llama.cpp GGUF files (llama) -> HF-named tensors and config; tokenizer.py
"""

from lightft_jax.models import archs
from lightft_jax.models.config import PRESETS, TransformerConfig, get_preset
from lightft_jax.models.hf import from_pretrained, load_tokenizer, save_pretrained
from lightft_jax.models.generate import generate
from lightft_jax.models.transformer import Transformer

__all__ = ["PRESETS", "TransformerConfig", "Transformer", "archs", "from_pretrained", "generate", "get_preset",
           "load_tokenizer", "save_pretrained"]
