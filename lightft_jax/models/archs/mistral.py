"""Mistral (HF `mistral`): Llama's layout and weight names, plus sliding-window attention.

With `sliding_window` = W, a query attends to its own slot and the W - 1 before it (HF's
`kv_idx > q_idx - W`); config.json's `sliding_window: null` means full causal attention.
"""

from __future__ import annotations

from lightft_jax.models.archs import llama
from lightft_jax.models.archs.base import Architecture

DEFAULTS = {**llama.DEFAULTS, "model_type": "mistral"}
PRESETS = {
    "tiny-mistral": dict(vocab_size=1024, d_model=64, n_layers=2, n_heads=4, n_kv_heads=2, d_ff=128,
                         max_positions=128, sliding_window=32, pad_token_id=0, bos_token_id=1, eos_token_id=2),
}

# Llama's keys without mlp_bias (Mistral's projections have no biases).
CONFIG_FIELDS = tuple(p for p in llama.CONFIG_FIELDS if p[0] != "mlp_bias")


def from_hf(hf: dict) -> dict:
  return {**llama.from_hf(hf), "qkv_bias": False, "out_bias": False, "sliding_window": hf.get("sliding_window")}


def to_hf(cfg) -> dict:
  out = llama.to_hf(cfg)
  del out["attention_bias"]
  return {**out, "sliding_window": cfg.sliding_window}


ARCH = Architecture(model_type="mistral", defaults=DEFAULTS, presets=PRESETS, base_preset="tiny-mistral",
                    config_fields=CONFIG_FIELDS, from_hf=from_hf, to_hf=to_hf, body=llama.body,
                    classes=llama.hf_classes("Mistral"), head_style="last_token")
