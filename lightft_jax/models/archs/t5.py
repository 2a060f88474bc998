"""T5 (HF `t5`): encoder-decoder, relative position bias, RMSNorm; v1.0 (ReLU, tied scaled logits) and
v1.1 (gated GELU, own lm_head)."""

from __future__ import annotations

from lightft_jax.models.archs.base import (HF_ACTIVATIONS, Architecture, HFClass, activation, dense, dropout_fields,
                                           embed, layers, norm)

DEFAULTS = dict(arch="encoder_decoder", model_type="t5", position="relative", norm="rmsnorm", norm_eps=1e-6,
                activation="relu", qkv_bias=False, out_bias=False, mlp_bias=False, attn_scale=1.0,
                tie_embeddings=True, scale_tied_logits=True, pad_token_id=0, eos_token_id=1,
                decoder_start_token_id=0)
PRESETS = {
    "tiny-t5": dict(vocab_size=1024, d_model=64, n_layers=2, n_heads=4, head_dim=16, d_ff=128, max_positions=128),
    "t5-small": dict(vocab_size=32128, d_model=512, n_layers=6, n_heads=8, head_dim=64, d_ff=2048, max_positions=512),
}

CONFIG_FIELDS = (("vocab_size", "vocab_size"), ("d_model", "d_model"), ("d_kv", "head_dim"), ("d_ff", "d_ff"),
                 ("num_layers", "n_layers"), ("num_decoder_layers", "n_decoder_layers"), ("num_heads", "n_heads"),
                 ("relative_attention_num_buckets", "rel_buckets"),
                 ("relative_attention_max_distance", "rel_max_distance"), ("layer_norm_epsilon", "norm_eps"),
                 ("pad_token_id", "pad_token_id"), ("eos_token_id", "eos_token_id"),
                 ("decoder_start_token_id", "decoder_start_token_id"))


def from_hf(hf: dict) -> dict:
  proj = hf.get("feed_forward_proj", "relu")
  gated = proj.startswith("gated-")
  act = "gelu_new" if proj == "gated-gelu" else proj.split("-")[-1]
  scale = hf.get("scale_decoder_outputs", hf.get("tie_word_embeddings") is not False)
  return dict(activation=activation(act), gated_mlp=gated, scale_tied_logits=bool(scale),
              **dropout_fields(hf, "dropout_rate", 0.1, "dropout_rate", 0.1))  # T5: one rate, attention too


def to_hf(cfg) -> dict:
  act = HF_ACTIVATIONS[cfg.activation]
  return dict(d_kv=cfg.dim_head, num_decoder_layers=cfg.num_decoder_layers, dropout_rate=cfg.dropout,
              feed_forward_proj=("gated-" if cfg.gated_mlp else "") + ("gelu" if act == "gelu_new" else act),
              tie_word_embeddings=cfg.tie_embeddings, scale_decoder_outputs=cfg.scale_tied_logits,
              is_encoder_decoder=True)


def body(c) -> list:
  def attn(ours, theirs):
    return sum((dense(f"{ours}.{o}", f"{theirs}.{t}", False) for o, t in
                (("query", "q"), ("key", "k"), ("value", "v"), ("out", "o"))), [])

  def mlp(ours, theirs):
    if c.gated_mlp:
      return (dense(f"{ours}.gate", f"{theirs}.wi_0", False) + dense(f"{ours}.up", f"{theirs}.wi_1", False)
              + dense(f"{ours}.down", f"{theirs}.wo", False))
    return dense(f"{ours}.up", f"{theirs}.wi", False) + dense(f"{ours}.down", f"{theirs}.wo", False)

  enc, dec = "encoder.layers.{i}", "decoder.layers.{i}"
  enc_layer = (attn(f"{enc}.attn", "encoder.block.{i}.layer.0.SelfAttention")
               + norm(f"{enc}.attn_norm", "encoder.block.{i}.layer.0.layer_norm", False)
               + mlp(f"{enc}.mlp", "encoder.block.{i}.layer.1.DenseReluDense")
               + norm(f"{enc}.mlp_norm", "encoder.block.{i}.layer.1.layer_norm", False))
  dec_layer = (attn(f"{dec}.attn", "decoder.block.{i}.layer.0.SelfAttention")
               + norm(f"{dec}.attn_norm", "decoder.block.{i}.layer.0.layer_norm", False)
               + attn(f"{dec}.cross_attn", "decoder.block.{i}.layer.1.EncDecAttention")
               + norm(f"{dec}.cross_attn_norm", "decoder.block.{i}.layer.1.layer_norm", False)
               + mlp(f"{dec}.mlp", "decoder.block.{i}.layer.2.DenseReluDense")
               + norm(f"{dec}.mlp_norm", "decoder.block.{i}.layer.2.layer_norm", False))
  rel = "block.0.layer.0.SelfAttention.relative_attention_bias.weight"
  return (embed("embed.tokens", "shared.weight")
          + embed("encoder.rel_bias", f"encoder.{rel}") + embed("decoder.rel_bias", f"decoder.{rel}")
          + layers(c.n_layers, enc_layer) + layers(c.num_decoder_layers, dec_layer)
          + norm("encoder.final_norm", "encoder.final_layer_norm", False)
          + norm("decoder.final_norm", "decoder.final_layer_norm", False))


def checkpoint_fields(cfg, task: str, names: set[str], prefix: str, head_style: str | None) -> dict:
  """Untied when the checkpoint has its own lm_head (T5 v1.1)."""
  return dict(tie_embeddings="lm_head.weight" not in names)


CLASSES = {
    "base": HFClass("T5Model"),
    "lm": HFClass("T5ForConditionalGeneration", "", tuple(dense("lm_head", "lm_head", False))),
}

ARCH = Architecture(model_type="t5", defaults=DEFAULTS, presets=PRESETS, base_preset="tiny-t5",
                    config_fields=CONFIG_FIELDS, from_hf=from_hf, to_hf=to_hf, body=body, classes=CLASSES,
                    checkpoint_fields=checkpoint_fields)
