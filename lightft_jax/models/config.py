"""One config describes every architecture of the Transformer family.

BERT/RoBERTa (post-LN encoders), GPT-2 and Llama/Mistral-style decoders, and T5 v1.0/v1.1
encoder-decoders are all points in this space; `PRESETS` names a few of them (each defined in its
architecture's module, `lightft_jax.models.archs.<model_type>`).
"""

from __future__ import annotations

import dataclasses
from typing import Literal

import jax.numpy as jnp

from lightft_jax.models import archs

Arch = Literal["encoder", "decoder", "encoder_decoder"]
ARCHS = ("encoder", "decoder", "encoder_decoder")


@dataclasses.dataclass(frozen=True)
class TransformerConfig:
  """Static description of a Transformer; hashable so it can key jit caches."""

  arch: Arch = "decoder"
  model_type: str = "custom"  # HF model_type this config mirrors (a key of lightft_jax.models.archs)
  vocab_size: int = 1024
  d_model: int = 64
  n_layers: int = 2
  n_decoder_layers: int | None = None  # encoder_decoder only; defaults to n_layers
  n_heads: int = 4
  n_kv_heads: int | None = None  # grouped-query attention; defaults to n_heads
  head_dim: int | None = None  # defaults to d_model // n_heads
  d_ff: int = 256
  max_positions: int = 512  # learned positions / RoPE cache length; input longer than this is an error

  # Positions.
  position: Literal["learned", "rope", "relative", "none"] = "learned"
  position_offset: int = 0  # RoBERTa starts positions at padding_idx + 1 = 2
  rope_theta: float = 10000.0
  rel_buckets: int = 32
  rel_max_distance: int = 128
  type_vocab_size: int = 0  # BERT token types; 0 disables

  # Normalisation and residual layout.
  norm: Literal["layernorm", "rmsnorm"] = "layernorm"
  norm_eps: float = 1e-5
  prenorm: bool = True  # False: post-LN (BERT)
  embed_norm: bool = False  # LayerNorm right after embeddings (BERT)
  final_norm: bool = True  # norm after the last block (GPT-2 ln_f, Llama norm, T5 final_layer_norm)

  # Attention / MLP.
  activation: Literal["gelu", "gelu_tanh", "relu", "silu"] = "gelu"
  gated_mlp: bool = False  # SwiGLU / gated-GELU
  qkv_bias: bool = True
  out_bias: bool = True
  mlp_bias: bool = True
  fused_qkv: bool = False  # one projection to q,k,v (GPT-2 c_attn)
  attn_scale: float | None = None  # None: 1/sqrt(head_dim); T5 uses 1.0
  sliding_window: int | None = None  # causal self-attention sees its own and the W-1 previous slots (Mistral)

  # Embeddings and heads.
  tie_embeddings: bool = True
  scale_tied_logits: bool = False  # T5 v1.0 multiplies by d_model**-0.5 before a tied LM head
  pooler: bool = False  # BERT pooler (dense + tanh on the first token)
  pad_token_id: int = 0
  bos_token_id: int | None = None
  eos_token_id: int | None = None
  decoder_start_token_id: int = 0  # encoder_decoder

  # Numerics and compilation.
  dtype: str = "float32"  # compute dtype
  param_dtype: str = "float32"
  remat: bool = False
  scan_layers: bool = False
  dropout: float = 0.0  # embeddings, residual branches, stack output
  attention_dropout: float = 0.0  # attention probabilities (train mode only; an explicit softmax then)
  initializer_range: float = 0.02

  def __post_init__(self):
    if self.arch not in ARCHS:
      raise ValueError(f"arch must be one of {ARCHS}, got {self.arch!r}")
    if self.d_model % self.n_heads and self.head_dim is None:
      raise ValueError(f"d_model={self.d_model} is not divisible by n_heads={self.n_heads}; set head_dim")
    if self.num_kv_heads <= 0 or self.n_heads % self.num_kv_heads:
      raise ValueError(f"n_heads={self.n_heads} must be a multiple of n_kv_heads={self.num_kv_heads}")
    for name in ("dropout", "attention_dropout"):
      if not 0.0 <= getattr(self, name) < 1.0:
        raise ValueError(f"{name} must be a rate in [0, 1), got {getattr(self, name)}")
    if self.sliding_window is not None and self.sliding_window < 1:
      raise ValueError(f"sliding_window must be a positive number of slots or None, got {self.sliding_window}")

  @property
  def num_kv_heads(self) -> int:
    return self.n_kv_heads or self.n_heads

  @property
  def dim_head(self) -> int:
    return self.head_dim or self.d_model // self.n_heads

  @property
  def num_decoder_layers(self) -> int:
    return self.n_decoder_layers or self.n_layers

  @property
  def compute_dtype(self):
    return jnp.dtype(self.dtype)

  @property
  def params_dtype(self):
    return jnp.dtype(self.param_dtype)

  def replace(self, **kw) -> "TransformerConfig":
    unknown = set(kw) - {f.name for f in dataclasses.fields(self)}
    if unknown:
      raise ValueError(f"unknown TransformerConfig fields {sorted(unknown)}")
    return dataclasses.replace(self, **kw)


# Presets live beside their architecture (lightft_jax/models/archs/<model_type>.py).
PRESETS: dict[str, TransformerConfig] = {name: TransformerConfig(**fields)
                                         for name, fields in archs.preset_fields().items()}


def get_preset(name: str, **overrides) -> TransformerConfig:
  if name not in PRESETS:
    raise ValueError(f"unknown model preset {name!r}; available: {sorted(PRESETS)}")
  return PRESETS[name].replace(**overrides) if overrides else PRESETS[name]
