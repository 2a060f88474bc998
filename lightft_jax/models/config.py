"""One config describes every architecture of the Transformer family.

BERT/RoBERTa (post-LN encoders), GPT-2 and Llama-style decoders, and T5 v1.0/v1.1
encoder-decoders are all points in this space; `PRESETS` names a few of them.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

import jax.numpy as jnp

Arch = Literal["encoder", "decoder", "encoder_decoder"]
ARCHS = ("encoder", "decoder", "encoder_decoder")


@dataclasses.dataclass(frozen=True)
class TransformerConfig:
  """Static description of a Transformer; hashable so it can key jit caches."""

  arch: Arch = "decoder"
  model_type: str = "custom"  # HF model_type this config mirrors (bert, roberta, gpt2, t5, llama)
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
  dropout: float = 0.0
  initializer_range: float = 0.02

  def __post_init__(self):
    if self.arch not in ARCHS:
      raise ValueError(f"arch must be one of {ARCHS}, got {self.arch!r}")
    if self.d_model % self.n_heads and self.head_dim is None:
      raise ValueError(f"d_model={self.d_model} is not divisible by n_heads={self.n_heads}; set head_dim")
    if self.num_kv_heads <= 0 or self.n_heads % self.num_kv_heads:
      raise ValueError(f"n_heads={self.n_heads} must be a multiple of n_kv_heads={self.num_kv_heads}")

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


def _make(defaults: dict, kw: dict) -> TransformerConfig:
  return TransformerConfig(**{**defaults, **kw})


def _bert(**kw):
  return _make(dict(arch="encoder", model_type="bert", position="learned", prenorm=False, embed_norm=True,
                    final_norm=False, norm_eps=1e-12, type_vocab_size=2, activation="gelu", pooler=True,
                    tie_embeddings=True), kw)


def _gpt2(**kw):
  return _make(dict(arch="decoder", model_type="gpt2", position="learned", prenorm=True, activation="gelu_tanh",
                    fused_qkv=True, tie_embeddings=True, pad_token_id=50256, bos_token_id=50256,
                    eos_token_id=50256), kw)


def _llama(**kw):
  return _make(dict(arch="decoder", model_type="llama", position="rope", norm="rmsnorm", norm_eps=1e-6,
                    activation="silu", gated_mlp=True, qkv_bias=False, out_bias=False, mlp_bias=False,
                    tie_embeddings=False), kw)


def _t5(**kw):
  return _make(dict(arch="encoder_decoder", model_type="t5", position="relative", norm="rmsnorm",
                    norm_eps=1e-6, activation="relu", qkv_bias=False, out_bias=False, mlp_bias=False,
                    attn_scale=1.0, tie_embeddings=True, scale_tied_logits=True, pad_token_id=0,
                    eos_token_id=1, decoder_start_token_id=0), kw)


PRESETS: dict[str, TransformerConfig] = {
    "tiny-bert": _bert(vocab_size=1024, d_model=64, n_layers=2, n_heads=4, d_ff=128, max_positions=128),
    "tiny-gpt2": _gpt2(vocab_size=1024, d_model=64, n_layers=2, n_heads=4, d_ff=256, max_positions=128,
                       pad_token_id=0, bos_token_id=1, eos_token_id=2),
    "tiny-llama": _llama(vocab_size=1024, d_model=64, n_layers=2, n_heads=4, n_kv_heads=2, d_ff=128,
                         max_positions=128, pad_token_id=0, bos_token_id=1, eos_token_id=2),
    "tiny-t5": _t5(vocab_size=1024, d_model=64, n_layers=2, n_heads=4, head_dim=16, d_ff=128,
                   max_positions=128),
    "bert-base": _bert(vocab_size=30522, d_model=768, n_layers=12, n_heads=12, d_ff=3072, max_positions=512),
    "roberta-base": _bert(vocab_size=50265, d_model=768, n_layers=12, n_heads=12, d_ff=3072,
                          max_positions=514, position_offset=2, type_vocab_size=1, model_type="roberta",
                          pad_token_id=1).replace(pooler=False),
    "gpt2": _gpt2(vocab_size=50257, d_model=768, n_layers=12, n_heads=12, d_ff=3072, max_positions=1024),
    "llama-1b": _llama(vocab_size=32000, d_model=2048, n_layers=16, n_heads=32, n_kv_heads=8, d_ff=8192,
                       max_positions=4096, rope_theta=500000.0),
    "t5-small": _t5(vocab_size=32128, d_model=512, n_layers=6, n_heads=8, head_dim=64, d_ff=2048,
                    max_positions=512),
}


def get_preset(name: str, **overrides) -> TransformerConfig:
  if name not in PRESETS:
    raise ValueError(f"unknown model preset {name!r}; available: {sorted(PRESETS)}")
  return PRESETS[name].replace(**overrides) if overrides else PRESETS[name]
