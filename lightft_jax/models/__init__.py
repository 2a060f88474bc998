"""Flax NNX Transformer family, heads, generation and Hugging Face checkpoint import."""

from lightft_jax.models.config import PRESETS, TransformerConfig, get_preset
from lightft_jax.models.hf import from_pretrained, load_tokenizer, save_pretrained
from lightft_jax.models.generate import generate
from lightft_jax.models.transformer import Transformer

__all__ = ["PRESETS", "TransformerConfig", "Transformer", "from_pretrained", "generate", "get_preset", "load_tokenizer",
           "save_pretrained"]
