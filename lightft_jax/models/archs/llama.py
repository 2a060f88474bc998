"""Llama (HF `llama`): pre-RMSNorm decoder, RoPE, SwiGLU, grouped-query attention, untied LM head."""

from __future__ import annotations

from lightft_jax.models.archs.base import (HF_ACTIVATIONS, Architecture, HFClass, activation, dense, dropout_fields,
                                           embed, first, layers, norm)

DEFAULTS = dict(arch="decoder", model_type="llama", position="rope", norm="rmsnorm", norm_eps=1e-6,
                activation="silu", gated_mlp=True, qkv_bias=False, out_bias=False, mlp_bias=False,
                tie_embeddings=False)
PRESETS = {
    "tiny-llama": dict(vocab_size=1024, d_model=64, n_layers=2, n_heads=4, n_kv_heads=2, d_ff=128,
                       max_positions=128, pad_token_id=0, bos_token_id=1, eos_token_id=2),
    "llama-1b": dict(vocab_size=32000, d_model=2048, n_layers=16, n_heads=32, n_kv_heads=8, d_ff=8192,
                     max_positions=4096, rope_theta=500000.0),
}

CONFIG_FIELDS = (("vocab_size", "vocab_size"), ("hidden_size", "d_model"), ("num_hidden_layers", "n_layers"),
                 ("num_attention_heads", "n_heads"), ("num_key_value_heads", "n_kv_heads"), ("head_dim", "head_dim"),
                 ("intermediate_size", "d_ff"), ("max_position_embeddings", "max_positions"),
                 ("rms_norm_eps", "norm_eps"), ("mlp_bias", "mlp_bias"), ("bos_token_id", "bos_token_id"),
                 ("eos_token_id", "eos_token_id"), ("initializer_range", "initializer_range"))


def rope_theta(hf: dict) -> float:
  """RoPE base frequency from `rope_parameters` (transformers >= 5), `rope_scaling` or `rope_theta`; scaled
  RoPE variants (yarn, linear, llama3, ...) are refused."""
  params = hf.get("rope_parameters") or hf.get("rope_scaling") or {}
  kind = params.get("rope_type", params.get("type", "default"))
  if kind != "default":
    raise ValueError(f"rope type {kind!r} is not supported; only the default (unscaled) RoPE is")
  return float(params.get("rope_theta", hf.get("rope_theta", 10000.0)))


def from_hf(hf: dict) -> dict:
  """Llama has no dropout on hidden states (dropout 0); `attention_dropout` drops attention probabilities."""
  bias = bool(hf.get("attention_bias", False))
  pad = hf.get("pad_token_id")
  return dict(rope_theta=rope_theta(hf), qkv_bias=bias, out_bias=bias,
              activation=activation(hf.get("hidden_act", "silu")),
              tie_embeddings=bool(hf.get("tie_word_embeddings", False)),
              pad_token_id=first(pad if pad is not None else hf.get("eos_token_id", 0)),
              **dropout_fields(hf, None, 0.0, "attention_dropout"))


def to_hf(cfg) -> dict:
  return dict(num_key_value_heads=cfg.num_kv_heads, head_dim=cfg.dim_head, hidden_act=HF_ACTIVATIONS[cfg.activation],
              attention_bias=cfg.qkv_bias, tie_word_embeddings=cfg.tie_embeddings, pad_token_id=cfg.pad_token_id,
              rope_parameters={"rope_type": "default", "rope_theta": cfg.rope_theta}, rope_theta=cfg.rope_theta,
              attention_dropout=cfg.attention_dropout)


def body(c) -> list:
  a, m = c.qkv_bias, c.mlp_bias
  layer = (norm("decoder.layers.{i}.attn_norm", "layers.{i}.input_layernorm", False)
           + dense("decoder.layers.{i}.attn.query", "layers.{i}.self_attn.q_proj", a)
           + dense("decoder.layers.{i}.attn.key", "layers.{i}.self_attn.k_proj", a)
           + dense("decoder.layers.{i}.attn.value", "layers.{i}.self_attn.v_proj", a)
           + dense("decoder.layers.{i}.attn.out", "layers.{i}.self_attn.o_proj", c.out_bias)
           + norm("decoder.layers.{i}.mlp_norm", "layers.{i}.post_attention_layernorm", False)
           + dense("decoder.layers.{i}.mlp.gate", "layers.{i}.mlp.gate_proj", m)
           + dense("decoder.layers.{i}.mlp.up", "layers.{i}.mlp.up_proj", m)
           + dense("decoder.layers.{i}.mlp.down", "layers.{i}.mlp.down_proj", m))
  return (embed("embed.tokens", "embed_tokens.weight") + layers(c.n_layers, layer)
          + norm("decoder.final_norm", "norm", False))


def hf_classes(name: str, qa_prefix: str = "model.") -> dict[str, HFClass]:
  """The HF classes of a Llama-layout family named `name` (Llama, Mistral, ...): `{name}Model`,
  `{name}ForCausalLM`, ...; `qa_prefix` is the base-model prefix of its question-answering class."""
  classes = {
      "base": HFClass(f"{name}Model"),
      "lm": HFClass(f"{name}ForCausalLM", "model.", tuple(dense("lm_head", "lm_head", False))),
      "classification": HFClass(f"{name}ForSequenceClassification", "model.", tuple(dense("head.out", "score", False))),
      "token_classification": HFClass(f"{name}ForTokenClassification", "model.", tuple(dense("head.out", "score"))),
      "qa": HFClass(f"{name}ForQuestionAnswering", qa_prefix, tuple(dense("head.out", "qa_outputs"))),
  }
  classes["regression"] = classes["classification"]
  return classes


ARCH = Architecture(model_type="llama", defaults=DEFAULTS, presets=PRESETS, base_preset="tiny-llama",
                    config_fields=CONFIG_FIELDS, from_hf=from_hf, to_hf=to_hf, body=body,
                    classes=hf_classes("Llama", qa_prefix="transformer."), head_style="last_token")
