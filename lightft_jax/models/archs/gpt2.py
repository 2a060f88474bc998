"""GPT-2 (HF `gpt2`): pre-LN decoder, learned positions, fused qkv, tied embeddings; Conv1D weights [in, out]."""

from __future__ import annotations

import logging

from lightft_jax.models.archs.base import (HF_ACTIVATIONS, Architecture, HFClass, activation, dense, dropout_fields,
                                           embed, first, layers, norm)

log = logging.getLogger(__name__)

DEFAULTS = dict(arch="decoder", model_type="gpt2", position="learned", prenorm=True, activation="gelu_tanh",
                fused_qkv=True, tie_embeddings=True, pad_token_id=50256, bos_token_id=50256, eos_token_id=50256)
PRESETS = {
    "tiny-gpt2": dict(vocab_size=1024, d_model=64, n_layers=2, n_heads=4, d_ff=256, max_positions=128,
                      pad_token_id=0, bos_token_id=1, eos_token_id=2),
    "gpt2": dict(vocab_size=50257, d_model=768, n_layers=12, n_heads=12, d_ff=3072, max_positions=1024),
}

CONFIG_FIELDS = (("vocab_size", "vocab_size"), ("n_embd", "d_model"), ("n_layer", "n_layers"), ("n_head", "n_heads"),
                 ("n_positions", "max_positions"), ("layer_norm_epsilon", "norm_eps"),
                 ("bos_token_id", "bos_token_id"), ("eos_token_id", "eos_token_id"),
                 ("initializer_range", "initializer_range"))


def from_hf(hf: dict) -> dict:
  if hf.get("scale_attn_by_inverse_layer_idx"):
    raise ValueError("gpt2 with scale_attn_by_inverse_layer_idx=True is not supported")
  d = hf.get("n_embd", 768)
  resid, embd = (hf.get(k) for k in ("resid_pdrop", "embd_pdrop"))
  if resid is not None and embd is not None and resid != embd:  # one rate for embeddings and residual branches
    log.info("embd_pdrop=%s differs from resid_pdrop=%s; lightft_jax uses resid_pdrop for both", embd, resid)
  return dict(**dropout_fields(hf, "resid_pdrop" if resid is not None else "embd_pdrop", 0.1, "attn_pdrop", 0.1),
              d_ff=hf.get("n_inner") or 4 * d, activation=activation(hf.get("activation_function", "gelu_new")),
              attn_scale=None if hf.get("scale_attn_weights", True) else 1.0,
              pad_token_id=first(hf.get("pad_token_id") if hf.get("pad_token_id") is not None
                                 else hf.get("eos_token_id", 50256)))


def to_hf(cfg) -> dict:
  return dict(n_inner=cfg.d_ff, activation_function=HF_ACTIVATIONS[cfg.activation],
              scale_attn_weights=cfg.attn_scale is None, pad_token_id=cfg.pad_token_id, resid_pdrop=cfg.dropout,
              embd_pdrop=cfg.dropout, attn_pdrop=cfg.attention_dropout)


def body(c) -> list:
  layer = (norm("decoder.layers.{i}.attn_norm", "h.{i}.ln_1")
           + dense("decoder.layers.{i}.attn.qkv", "h.{i}.attn.c_attn", kind="copy")
           + dense("decoder.layers.{i}.attn.out", "h.{i}.attn.c_proj", kind="copy")
           + norm("decoder.layers.{i}.mlp_norm", "h.{i}.ln_2")
           + dense("decoder.layers.{i}.mlp.up", "h.{i}.mlp.c_fc", kind="copy")
           + dense("decoder.layers.{i}.mlp.down", "h.{i}.mlp.c_proj", kind="copy"))
  return (embed("embed.tokens", "wte.weight") + embed("embed.positions", "wpe.weight")
          + layers(c.n_layers, layer) + norm("decoder.final_norm", "ln_f"))


CLASSES = {
    "base": HFClass("GPT2Model"),
    "lm": HFClass("GPT2LMHeadModel", "transformer."),
    "classification": HFClass("GPT2ForSequenceClassification", "transformer.",
                              tuple(dense("head.out", "score", False))),
    "token_classification": HFClass("GPT2ForTokenClassification", "transformer.",
                                    tuple(dense("head.out", "classifier"))),
    "qa": HFClass("GPT2ForQuestionAnswering", "transformer.", tuple(dense("head.out", "qa_outputs"))),
}
CLASSES["regression"] = CLASSES["classification"]

ARCH = Architecture(model_type="gpt2", defaults=DEFAULTS, presets=PRESETS, base_preset="tiny-gpt2",
                    config_fields=CONFIG_FIELDS, from_hf=from_hf, to_hf=to_hf, body=body, classes=CLASSES,
                    head_style="last_token", conv1d=True)
