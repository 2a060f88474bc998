"""Flax NNX Transformer family, heads, generation and Hugging Face checkpoint import."""

from lightft_jax.models.config import PRESETS, TransformerConfig, get_preset
from lightft_jax.models.generate import generate
from lightft_jax.models.transformer import Transformer

__all__ = ["PRESETS", "TransformerConfig", "Transformer", "generate", "get_preset"]
