"""Small NNX building blocks: Dense, embeddings, norms, RoPE, relative position bias, attention, MLP.

Every submodule call takes an optional `ctx` dict (per-call conditioning such as task ids or
generated weights). The base modules ignore it; PEFT wrappers that replace them read it. Together with the
slots declared in extensions.py (`Attention.extra_kv` here) that is how methods reach into the model without
the model knowing about them. The matmul every Dense uses lives in ops.py.

Shapes: B batch, T query length, S key length, D d_model, H heads, K kv heads, Dh head dim.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from flax import nnx

from lightft_jax.models.config import TransformerConfig
from lightft_jax.models.extensions import Ctx  # noqa: F401  (re-exported: PEFT wrappers import it from here)
from lightft_jax.models.ops import linear
from lightft_jax.models.quant import QuantizedKernel

nnx.use_eager_sharding(False)  # parameters carry logical axis names; sharding happens in train/


def _normal(std: float):
  return nnx.initializers.normal(stddev=std)




class Dense(nnx.Module):
  """y = x @ kernel + bias with kernel [in, out] and logical axis names on both.

  `kernel` is an nnx.Param, or a frozen quant.QuantizedKernel (quant.quantize_model) dequantized inside the matmul.
  """

  def __init__(self, d_in: int, d_out: int, *, axes: tuple[str, str], use_bias: bool, cfg: TransformerConfig,
               rngs: nnx.Rngs, std: float | None = None):
    self.d_in, self.d_out = d_in, d_out
    self.dtype = cfg.compute_dtype
    init = _normal(cfg.initializer_range if std is None else std)
    self.kernel = nnx.Param(init(rngs.params(), (d_in, d_out), cfg.params_dtype), sharding_names=axes)
    self.bias = (nnx.Param(jnp.zeros((d_out,), cfg.params_dtype), sharding_names=(axes[1],))
                 if use_bias else None)

  def __call__(self, x: jax.Array, ctx: Ctx = None) -> jax.Array:
    if isinstance(self.kernel, QuantizedKernel):
      y = self.kernel.apply(x.astype(self.dtype))
    else:
      y = linear(x.astype(self.dtype), self.kernel[...].astype(self.dtype))
    if self.bias is not None:
      y = y + self.bias[...].astype(self.dtype)
    return y


class Norm(nnx.Module):
  """LayerNorm (with bias) or RMSNorm (scale only, T5/Llama style), statistics in float32."""

  def __init__(self, dim: int, cfg: TransformerConfig, rngs: nnx.Rngs | None = None):
    self.kind, self.eps, self.dtype = cfg.norm, cfg.norm_eps, cfg.compute_dtype
    self.scale = nnx.Param(jnp.ones((dim,), cfg.params_dtype), sharding_names=("norm",))
    self.bias = (nnx.Param(jnp.zeros((dim,), cfg.params_dtype), sharding_names=("norm",))
                 if cfg.norm == "layernorm" else None)

  def __call__(self, x: jax.Array, ctx: Ctx = None) -> jax.Array:
    x32 = x.astype(jnp.float32)
    if self.kind == "layernorm":
      x32 = x32 - x32.mean(-1, keepdims=True)
    y = x32 * jax.lax.rsqrt(jnp.mean(jnp.square(x32), -1, keepdims=True) + self.eps)
    y = y * self.scale[...].astype(jnp.float32)
    if self.bias is not None:
      y = y + self.bias[...].astype(jnp.float32)
    return y.astype(self.dtype)


class Embedding(nnx.Module):
  """Lookup table [num, dim]; `attend` gives logits against it for tied heads."""

  def __init__(self, num: int, dim: int, *, axes: tuple[str, str], cfg: TransformerConfig, rngs: nnx.Rngs,
               std: float | None = None):
    self.num, self.dim, self.dtype = num, dim, cfg.compute_dtype
    init = _normal(cfg.initializer_range if std is None else std)
    self.embedding = nnx.Param(init(rngs.params(), (num, dim), cfg.params_dtype), sharding_names=axes)

  def __call__(self, ids: jax.Array, ctx: Ctx = None) -> jax.Array:
    return jnp.take(self.embedding[...], ids, axis=0).astype(self.dtype)

  def attend(self, x: jax.Array) -> jax.Array:
    return linear(x.astype(self.dtype), self.embedding[...].astype(self.dtype), True)


def gelu_exact(x: jax.Array) -> jax.Array:
  """x * Phi(x) through erf: the same function as `jax.nn.gelu(approximate=False)` (within 1e-6), whose
  erfc form lowers to exp and selects and costs about twice as much on CPU."""
  return 0.5 * x * (1.0 + jax.lax.erf(x * math.sqrt(0.5)))


def activation(name: str):
  return {
      "gelu": gelu_exact,
      "gelu_tanh": lambda x: jax.nn.gelu(x, approximate=True),
      "relu": jax.nn.relu,
      "silu": jax.nn.silu,
  }[name]


class MLP(nnx.Module):
  """down(act(up(x))) or, gated, down(act(gate(x)) * up(x))."""

  def __init__(self, cfg: TransformerConfig, rngs: nnx.Rngs):
    d, f, b = cfg.d_model, cfg.d_ff, cfg.mlp_bias
    self.act = activation(cfg.activation)
    self.gate = Dense(d, f, axes=("embed", "mlp"), use_bias=b, cfg=cfg, rngs=rngs) if cfg.gated_mlp else None
    self.up = Dense(d, f, axes=("embed", "mlp"), use_bias=b, cfg=cfg, rngs=rngs)
    self.down = Dense(f, d, axes=("mlp", "embed"), use_bias=b, cfg=cfg, rngs=rngs)

  def __call__(self, x: jax.Array, ctx: Ctx = None) -> jax.Array:
    if self.gate is not None:
      h = self.act(self.gate(x, ctx)) * self.up(x, ctx)
    else:
      h = self.act(self.up(x, ctx))
    return self.down(h, ctx)


def rope(x: jax.Array, positions: jax.Array, theta: float) -> jax.Array:
  """Rotary embedding, HF Llama "rotate_half" layout. x [B,T,H,Dh], positions [B,T]."""
  dh = x.shape[-1]
  inv_freq = 1.0 / (theta ** (jnp.arange(0, dh, 2, dtype=jnp.float32) / dh))
  ang = positions.astype(jnp.float32)[..., None] * inv_freq  # [B,T,Dh/2]
  cos = jnp.concatenate([jnp.cos(ang)] * 2, -1)[:, :, None, :]
  sin = jnp.concatenate([jnp.sin(ang)] * 2, -1)[:, :, None, :]
  x32 = x.astype(jnp.float32)
  x1, x2 = x32[..., : dh // 2], x32[..., dh // 2:]
  rotated = jnp.concatenate([-x2, x1], -1)
  return (x32 * cos + rotated * sin).astype(x.dtype)


class RelativePositionBias(nnx.Module):
  """T5 bucketed relative position bias, shared by all layers of a stack. Returns [1|B, H, T, S]."""

  def __init__(self, cfg: TransformerConfig, bidirectional: bool, rngs: nnx.Rngs):
    self.num_buckets, self.max_distance = cfg.rel_buckets, cfg.rel_max_distance
    self.bidirectional = bidirectional
    self.embedding = nnx.Param(_normal(cfg.initializer_range)(rngs.params(), (cfg.rel_buckets, cfg.n_heads),
                                                              cfg.params_dtype), sharding_names=(None, "heads"))

  def bucket(self, rel: jax.Array) -> jax.Array:
    nb, ret = self.num_buckets, jnp.zeros_like(rel)
    if self.bidirectional:
      nb //= 2
      ret = ret + (rel > 0).astype(jnp.int32) * nb
      rel = jnp.abs(rel)
    else:
      rel = -jnp.minimum(rel, 0)
    max_exact = nb // 2
    is_small = rel < max_exact
    large = max_exact + (jnp.log(jnp.maximum(rel, 1).astype(jnp.float32) / max_exact)
                         / math.log(self.max_distance / max_exact) * (nb - max_exact)).astype(jnp.int32)
    large = jnp.minimum(large, nb - 1)
    return ret + jnp.where(is_small, rel, large)

  def __call__(self, q_pos: jax.Array, k_pos: jax.Array) -> jax.Array:
    """q_pos [T] or [B,T]; k_pos [S]."""
    rel = k_pos[..., None, :] - q_pos[..., :, None]  # [..., T, S]
    vals = jnp.take(self.embedding[...], self.bucket(rel), axis=0)  # [..., T, S, H]
    vals = jnp.moveaxis(vals, -1, -3)
    return vals if vals.ndim == 4 else vals[None]


def attention_implementation(dtype, head_dim: int, *, cached: bool, learned_bias: bool) -> str:
  """cuDNN fused (flash) attention on GPU in half precision (no KV cache, no learned bias), else XLA's.

  XLA's implementation materialises the [B,H,T,S] scores (and keeps them for the backward pass);
  `jax.nn.dot_product_attention` picks it when no implementation is named.
  """
  fused = (jax.default_backend() == "gpu" and not cached and not learned_bias and head_dim % 8 == 0
           and head_dim <= 128 and jnp.dtype(dtype) in (jnp.bfloat16, jnp.float16))
  return "cudnn" if fused else "xla"


def softmax_attention(q, k, v, *, bias=None, mask=None, scale=None, probs_fn=None) -> jax.Array:
  """What `jax.nn.dot_product_attention` (implementation "xla") computes, with the probabilities [B,H,T,S] in
  hand so that `probs_fn` (attention dropout) can act on them. q [B,T,H,Dh], k/v [B,S,K,Dh] (H a multiple of K)."""
  b, t, h, dh = q.shape
  kh = k.shape[2]
  qg = q.reshape(b, t, kh, h // kh, dh)
  logits = jnp.einsum("btkgd,bskd->bkgts", qg, k, preferred_element_type=jnp.float32)
  logits = logits * (dh ** -0.5 if scale is None else scale)
  if bias is not None:
    logits = logits + jnp.reshape(bias.astype(jnp.float32), (bias.shape[0], kh, h // kh) + bias.shape[2:])
  if mask is not None:
    mask = jnp.reshape(mask, (1,) * (4 - mask.ndim) + mask.shape)  # [.., T, S] -> [B|1, H|1, T, S]
    m = jnp.broadcast_to(mask, (mask.shape[0], mask.shape[1]) + logits.shape[-2:])
    m = m.reshape(m.shape[0], 1, 1, *m.shape[2:]) if m.shape[1] == 1 else m.reshape(m.shape[0], kh, h // kh,
                                                                                      *m.shape[2:])
    logits = jnp.where(m, logits, jnp.finfo(jnp.float32).min)
  probs = jax.nn.softmax(logits, axis=-1).astype(q.dtype)
  if probs_fn is not None:
    probs = probs_fn(probs)
  return jnp.einsum("bkgts,bskd->btkgd", probs, v).reshape(b, t, h, dh)


class Attention(nnx.Module):
  """Multi-head / grouped-query attention through `jax.nn.dot_product_attention`.

  `extra_kv` is an optional `extensions.ExtraKV` giving extra key/value slots that every query may attend:
  extra_kv(batch_size, ctx) -> (k [B,P,K,Dh], v [B,P,K,Dh]), placed before the cached / current keys.
  A relative-position `bias` may cover the P slots too ([.., T, P+S], as the Stack gives it when its layers'
  slots state `num_slots`); a bias over S keys only gets zeros for the slots, and one over slots this layer
  lacks is cut.
  """

  def __init__(self, cfg: TransformerConfig, rngs: nnx.Rngs, *, cross: bool = False):
    d, h, k, dh = cfg.d_model, cfg.n_heads, cfg.num_kv_heads, cfg.dim_head
    self.n_heads, self.n_kv_heads, self.head_dim = h, k, dh
    self.use_rope, self.rope_theta = cfg.position == "rope" and not cross, cfg.rope_theta
    self.scale = cfg.attn_scale
    self.dtype = cfg.compute_dtype
    mk = lambda n_out, axes, bias: Dense(d, n_out, axes=axes, use_bias=bias, cfg=cfg, rngs=rngs)
    if cfg.fused_qkv and not cross:
      self.qkv = mk((h + 2 * k) * dh, ("embed", "qkv"), cfg.qkv_bias)
    else:
      self.query = mk(h * dh, ("embed", "heads"), cfg.qkv_bias)
      self.key = mk(k * dh, ("embed", "kv"), cfg.qkv_bias)
      self.value = mk(k * dh, ("embed", "kv"), cfg.qkv_bias)
    self.out = Dense(h * dh, d, axes=("heads", "embed"), use_bias=cfg.out_bias, cfg=cfg, rngs=rngs)
    # Only built when used: a Dropout forks the rng stream, which would move every later initialisation.
    self.probs_dropout = nnx.Dropout(cfg.attention_dropout, rngs=rngs) if cfg.attention_dropout else None
    self.extra_kv = nnx.data(None)  # an extensions.ExtraKV, set by PEFT methods

  def project(self, x: jax.Array, kv_input: jax.Array, ctx: Ctx):
    b, t = x.shape[:2]
    h, k, dh = self.n_heads, self.n_kv_heads, self.head_dim
    if hasattr(self, "qkv"):
      q, kk, v = jnp.split(self.qkv(x, ctx), [h * dh, (h + k) * dh], axis=-1)
    else:
      q, kk, v = self.query(x, ctx), self.key(kv_input, ctx), self.value(kv_input, ctx)
    s = kv_input.shape[1]
    return q.reshape(b, t, h, dh), kk.reshape(b, s, k, dh), v.reshape(b, s, k, dh)

  def __call__(self, x: jax.Array, *, mask: jax.Array | None, bias: jax.Array | None = None,
               positions: jax.Array | None = None, kv_input: jax.Array | None = None,
               cache: dict | None = None, ctx: Ctx = None):
    """x [B,T,D]; mask bool broadcastable to [B,1,T,S] (True attends); bias [B|1,H,T,S].

    With `cache` = {"k","v": [B,Smax,K,Dh], "index": int}, keys/values are written at `index`
    and attention runs over all Smax slots (the mask says which are valid). Returns (y, cache).
    """
    b = x.shape[0]
    q, k, v = self.project(x, x if kv_input is None else kv_input, ctx)
    if self.use_rope:
      q, k = rope(q, positions, self.rope_theta), rope(k, positions, self.rope_theta)
    if cache is not None:
      idx = cache["index"]
      k = jax.lax.dynamic_update_slice_in_dim(cache["k"], k.astype(cache["k"].dtype), idx, axis=1)
      v = jax.lax.dynamic_update_slice_in_dim(cache["v"], v.astype(cache["v"].dtype), idx, axis=1)
      cache = {"k": k, "v": v, "index": idx}
    if self.extra_kv is not None:
      pk, pv = self.extra_kv(b, ctx)
      p = pk.shape[1]
      k = jnp.concatenate([pk.astype(k.dtype), k], 1)
      v = jnp.concatenate([pv.astype(v.dtype), v], 1)
      if mask is not None:
        mask = jnp.broadcast_to(mask, (b, 1, q.shape[1], mask.shape[-1]))
        mask = jnp.concatenate([jnp.ones(mask.shape[:-1] + (p,), bool), mask], -1)
      if bias is not None and bias.shape[-1] == k.shape[1] - p:
        bias = jnp.concatenate([jnp.zeros(bias.shape[:-1] + (p,), bias.dtype), bias], -1)
    if bias is not None and bias.shape[-1] > k.shape[1]:
      bias = bias[..., bias.shape[-1] - k.shape[1]:]
    if self.probs_dropout is not None and not self.probs_dropout.deterministic:
      y = softmax_attention(q.astype(self.dtype), k.astype(self.dtype), v.astype(self.dtype), bias=bias, mask=mask,
                            scale=self.scale, probs_fn=self.probs_dropout)
      return self.out(y.reshape(b, y.shape[1], -1), ctx), cache
    impl = attention_implementation(self.dtype, self.head_dim, cached=cache is not None, learned_bias=bias is not None)
    if impl == "cudnn" and mask is not None:  # cuDNN wants the mask's query axis spelled out
      mask = jnp.broadcast_to(mask, (b, 1, q.shape[1], k.shape[1]))
    y = jax.nn.dot_product_attention(q.astype(self.dtype), k.astype(self.dtype), v.astype(self.dtype),
                                     bias=None if bias is None else bias.astype(self.dtype),
                                     mask=mask, scale=self.scale, implementation=impl)
    return self.out(y.reshape(b, y.shape[1], -1), ctx), cache
