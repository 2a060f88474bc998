"""Prefix tuning (Li & Liang 2021): P learned key/value slots in every self-attention layer.

Each targeted Attention gets a `PrefixKV` in its `extra_kv` slot (an `ExtraKV`, models/extensions.py) returning
(k, v) [B, P, K, Dh] that every query attends (before the cached / current keys; see layers.Attention). It
states `num_slots` = P, so a relative position bias (T5) covers the slots at positions -P..-1, as in HF peft.
Positions of real tokens are not shifted.
On a scanned stack (scan_layers=True) the one stacked Attention gets one `PrefixKV` whose `prefix_k`, `prefix_v`
are stacked [L, P, K, Dh] (built per layer, `core.per_layer`); with `projection=True` its reparameterisation is
marked `LAYER_SHARED` (every layer reads it whole) and its layer number is a `core.LayerIndex` [L].
Without reparameterisation each layer holds `prefix_k`, `prefix_v` [P, K, Dh]. With `projection=True`
one shared module per stack maps an embedding [P, D] through an MLP (D -> hidden -> tanh -> L*2*K*Dh,
HF peft's PrefixEncoder) to every layer's keys and values; the output layout (P, layer, k|v, K, Dh) is
HF's `prompt_embeddings` layout.

HF peft interop (peft_type PREFIX_TUNING, registered with `hf_io.register_hf` at the end of this module):
`prompt_embeddings` [P, L*2*K*Dh] is `prefix_kv` flattened (a reparameterised prefix is written as its output,
prefix_projection=False); encoder-decoders follow HF's decoder-only layout (see `_hf_seq2seq`).
"""

from __future__ import annotations

import re

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from lightft_jax.models.layers import Attention, Ctx
from lightft_jax.peft import core, hf_io
from lightft_jax.peft.core import LAYER_SHARED, PeftParam, check_virtual_tokens, find_targets, register


class PrefixParam(PeftParam):
  """Prefix key/value slots and the reparameterisation MLP."""


class PrefixReparam(nnx.Module):
  """embedding [P, D] -> Linear(D, hidden) -> tanh -> Linear(hidden, L*2*K*Dh); shared by a stack's layers
  (its parameters are `LAYER_SHARED`: a scanned stack gives them whole to every layer)."""

  def __init__(self, p: int, d: int, hidden: int, n_layers: int, kv_heads: int, head_dim: int, *,
               init_std: float, dtype, rngs: nnx.Rngs):
    out = n_layers * 2 * kv_heads * head_dim
    self.shape = (p, n_layers, 2, kv_heads, head_dim)
    normal = lambda shape, std: std * jax.random.normal(rngs.params(), shape, dtype)
    param = lambda value, axes: PrefixParam(value, sharding_names=axes, **{LAYER_SHARED: True})
    self.prefix_embedding = param(normal((p, d), init_std), (None, "embed"))
    self.prefix_mlp_in = param(normal((d, hidden), d ** -0.5), ("embed", "mlp"))
    self.prefix_mlp_in_bias = param(jnp.zeros((hidden,), dtype), ("mlp",))
    self.prefix_mlp_out = param(normal((hidden, out), hidden ** -0.5), ("mlp", None))
    self.prefix_mlp_out_bias = param(jnp.zeros((out,), dtype), (None,))

  def hidden(self) -> jax.Array:
    """tanh(E @ W1 + b1) [P, hidden]."""
    return jnp.tanh(jnp.dot(self.prefix_embedding[...], self.prefix_mlp_in[...]) + self.prefix_mlp_in_bias[...])

  def layer_kv(self, layer) -> tuple[jax.Array, jax.Array]:
    """Keys and values [P, K, Dh] of one layer (an int, or a traced scalar inside a scan; only that layer's
    slice of the output matrix is used)."""
    p, n, _, k, dh = self.shape
    w = self.prefix_mlp_out[...].reshape(-1, n, 2 * k * dh)[:, layer]
    b = self.prefix_mlp_out_bias[...].reshape(n, 2 * k * dh)[layer]
    kv = (jnp.dot(self.hidden(), w) + b).reshape(p, 2, k, dh)
    return kv[:, 0], kv[:, 1]

  def all_kv(self) -> jax.Array:
    """[P, L, 2, K, Dh] for every layer (HF `prompt_embeddings` layout once flattened)."""
    out = jnp.dot(self.hidden(), self.prefix_mlp_out[...]) + self.prefix_mlp_out_bias[...]
    return out.reshape(self.shape)


class PrefixKV(nnx.Module):
  """An `Attention.extra_kv` (`ExtraKV`): own `prefix_k`/`prefix_v` [P,K,Dh] ([L,P,K,Dh] on a scanned stack),
  or a layer of a shared reparam (`layer`: an int, or a `core.LayerIndex` [L] on a scanned stack)."""

  def __init__(self, *, kv: tuple[jax.Array, jax.Array] | None = None, reparam: PrefixReparam | None = None,
               layer=0):
    if kv is not None:
      self.prefix_k = PrefixParam(kv[0], sharding_names=(None, "kv_heads", None))
      self.prefix_v = PrefixParam(kv[1], sharding_names=(None, "kv_heads", None))
    self.reparam = nnx.data(reparam)
    self.layer = layer

  @property
  def num_tokens(self) -> int:
    return self.reparam.shape[0] if self.reparam is not None else self.prefix_k.shape[-3]

  @property
  def num_slots(self) -> int:  # the slots sit at positions -P..-1 (ExtraKV)
    return self.num_tokens

  def kv(self) -> tuple[jax.Array, jax.Array]:
    """(k, v) [P, K, Dh]."""
    if self.reparam is not None:
      return self.reparam.layer_kv(core.layer_value(self.layer))
    return self.prefix_k[...], self.prefix_v[...]

  def __call__(self, batch_size: int, ctx: Ctx = None) -> tuple[jax.Array, jax.Array]:
    k, v = self.kv()
    return (jnp.broadcast_to(k, (batch_size,) + k.shape), jnp.broadcast_to(v, (batch_size,) + v.shape))


def stacks(model: nnx.Module, targets) -> dict[str, list[Attention]]:
  """{"encoder": [attn of layer 0, 1, ...], "decoder": [...]} for the Attention modules `targets` matches; a
  scanned stack's list holds its one stacked Attention (see `depth`)."""
  found = find_targets(model, targets, (Attention,), what="prefix")
  out: dict[str, list[tuple[int, Attention]]] = {}
  for path, module in found.items():
    m = re.match(r"(.*)\.layers(?:\.(\d+))?\.", path + ".")
    stack, layer = (m.group(1), int(m.group(2) or 0)) if m else (path, 0)
    out.setdefault(stack, []).append((layer, module))
  return {s: [a for _, a in sorted(v, key=lambda t: t[0])] for s, v in out.items()}


def _stacked(model, stack: str) -> int | None:
  """L when `stack` ("decoder", a `stacks` key) is scanned (its `stacks` entry is one stacked Attention)."""
  return core.scanned_stacks(model).get(f"{stack}.layers")


def depth(model, stack: str, layers: list[Attention]) -> int:
  """How many attention layers a `stacks` entry covers (its stacked modules times L on a scanned stack)."""
  n = _stacked(model, stack)
  return len(layers) if n is None else n * len(layers)


@register("prefix", num_tokens=10, projection=False, hidden=512, init_std=1.0,
          targets=r".*layers\.\d+\.attn(\.base)?$")
def attach(model: nnx.Module, cfg, rngs: nnx.Rngs) -> None:
  """Prefix slots on every self-attention layer (`targets` may add `cross_attn`)."""
  mc = model.cfg
  p = check_virtual_tokens(model, cfg.num_tokens, "prefix")
  dtype = mc.params_dtype
  for stack, layers in stacks(model, cfg.targets).items():
    k, dh = layers[0].n_kv_heads, layers[0].head_dim
    if any(a.extra_kv is not None for a in layers):
      raise ValueError("these attention layers already have a prefix (extra key/value slots); apply prefix "
                       "tuning once")
    n = _stacked(model, stack)  # a scanned stack: one stacked Attention for its n layers
    if cfg.projection:
      reparam = PrefixReparam(p, mc.d_model, cfg.hidden, depth(model, stack, layers), k, dh, init_std=cfg.init_std,
                              dtype=dtype, rngs=rngs)
      # unrolled, the entries are ordered by layer (attn 0, cross_attn 0, attn 1, ...); a scanned stack's k-th
      # stacked module of K takes the same reparameterisation layers k, K+k, 2K+k, ...
      hooks = [PrefixKV(reparam=reparam, layer=i) for i in range(len(layers))] if n is None else \
          [PrefixKV(reparam=reparam, layer=core.layer_index(n, k, stride=len(layers))) for k in range(len(layers))]
    else:
      def own(rngs):  # one layer's slots
        normal = lambda: cfg.init_std * jax.random.normal(rngs.params(), (p, k, dh), dtype)
        return PrefixKV(kv=(normal(), normal()))
      hooks = [core.per_layer(n, own, rngs=rngs) for _ in layers]
    for attn, hook in zip(layers, hooks):
      attn.extra_kv = hook


def prefix_kv(model: nnx.Module, stack: str = "decoder") -> jax.Array:
  """All prefix keys/values of one stack, [P, L, 2, K, Dh] (HF `prompt_embeddings` layout)."""
  layers = stacks(model, r".*layers\.\d+\.attn(\.base)?$").get(stack, [])
  hooks = [a.extra_kv for a in layers if isinstance(a.extra_kv, PrefixKV)]
  if not hooks:
    raise ValueError(f"no prefix attached to the {stack!r} stack")
  if hooks[0].reparam is not None:
    return hooks[0].reparam.all_kv()
  if _stacked(model, stack) is not None:  # [L, P, K, Dh] each
    return jnp.stack([hooks[0].prefix_k[...], hooks[0].prefix_v[...]], 1).transpose(2, 0, 1, 3, 4)
  return jnp.stack([jnp.stack(h.kv(), 0) for h in hooks], 0).transpose(2, 0, 1, 3, 4)


# ---------------------------------------------------------------------------------------------- HF peft

_HF_TARGETS = r".*layers\.\d+\.attn(\.base)?$"  # every layer's self-attention: where HF peft puts prefixes


def _hf_stacks(model):
  try:
    return stacks(model, _HF_TARGETS)
  except ValueError:
    return {}


def _has_prefix(model) -> bool:
  return any(a.extra_kv is not None for layers in _hf_stacks(model).values() for a in layers)


def _hf_stack(model) -> str:
  """The stack whose layers HF's `prompt_embeddings` describe: the encoder of encoder models, else the decoder."""
  return "encoder" if model.cfg.arch == "encoder" else "decoder"


def _hf_seq2seq(model) -> bool:
  """HF peft's encoder-decoder layout, the one case this mapping has.

  It is decided by the model's structure, as HF peft decides it (num_transformer_submodules=2, its SEQ_2_SEQ_LM
  default), not by model_type: prefixes sit on decoder self-attention only, in all L = encoder-count layers,
  and decoder layer j reads block `_hf_prefix_layers(L)[j]` of `prompt_embeddings`.
  """
  return hf_io.transformer_submodules(model) == 2


def _hf_prefix_layers(n: int) -> list[int]:
  """Encoder-decoders: the `prompt_embeddings` layer block that HF peft's get_prompt gives decoder layer j.

  It repeats the [P, L*2, ...] prefix to L*4 entries and reads them as (self k, self v, cross k, cross v) per
  layer, then drops the cross-attention part: decoder layer j gets block (2j mod L); encoder and cross-attention
  layers get none.
  """
  return [(2 * j) % n for j in range(n)]


def _check_seq2seq_prefix(model):
  """HF peft's encoder-decoder prefixes reach decoder self-attention only, in all L = encoder-count layers."""
  found = _hf_stacks(model)
  if any(a.extra_kv is not None for a in found.get("encoder", [])):
    raise ValueError("HF peft prefix tuning of encoder-decoder models puts prefixes on decoder self-attention "
                     "only; this model also has encoder prefixes")
  if model.cfg.num_decoder_layers != model.cfg.n_layers:
    raise ValueError(f"HF peft prefix tuning sizes encoder-decoder prefixes by the encoder's {model.cfg.n_layers} "
                     f"layers; this decoder has {model.cfg.num_decoder_layers}")


def _to_hf_blocks(kv: np.ndarray) -> np.ndarray:
  """Decoder prefixes [P, L, 2, K, Dh] -> HF blocks (see _hf_prefix_layers); blocks no layer reads stay 0."""
  out, owner = np.zeros_like(kv), {}
  for j, blk in enumerate(_hf_prefix_layers(kv.shape[1])):
    if blk in owner and not np.array_equal(kv[:, owner[blk]], kv[:, j]):
      raise ValueError(f"HF peft gives decoder layers {owner[blk]} and {j} the same prefix (its get_prompt reads "
                       f"block {blk} for both when the layer count is even); this model's differ")
    owner.setdefault(blk, j)
    out[:, blk] = kv[:, j]
  return out


def _save_hf(model, names, adapter, tensors) -> dict:
  if any(getattr(m, "extra_kv", None) is not None for p, m in nnx.iter_modules(model)
         if core.path_str(p).endswith("cross_attn")):
    raise ValueError("HF peft has no prefixes on cross-attention; remove them before save_hf")
  seq2seq = _hf_seq2seq(model)
  if seq2seq:
    _check_seq2seq_prefix(model)
  kv = prefix_kv(model, _hf_stack(model))  # [P, L, 2, K, Dh]
  p, n = kv.shape[:2]
  if n != model.cfg.n_layers:
    raise ValueError(f"HF peft prefix tuning covers every layer; this model has prefixes on {n} of "
                     f"{model.cfg.n_layers}")
  if seq2seq:
    kv = _to_hf_blocks(hf_io.to_np(kv))
  tensors["prompt_embeddings"] = hf_io.to_np(kv).reshape(p, -1)
  k, dh = kv.shape[3:]  # HF peft sizes prefixes of grouped-query models by the kv heads
  cfg = hf_io.prompt_learning_config(model, p, k * dh, k)
  cfg.update(prefix_projection=False, encoder_hidden_size=model.cfg.d_model)
  return cfg


def _load_hf(model, cfg, tensors, adapter):
  rest = dict(tensors)
  emb = rest.pop("prompt_embeddings")
  p = int(cfg["num_virtual_tokens"])
  seq2seq = _hf_seq2seq(model)
  stack = _hf_stack(model)
  layers = stacks(model, _HF_TARGETS)[stack]
  n = depth(model, stack, layers)
  k, dh = layers[0].n_kv_heads, layers[0].head_dim
  hf_io.check_prompt_learning_config(model, cfg, k * dh)
  if seq2seq:
    _check_seq2seq_prefix(model)
  if emb.shape != (p, n * 2 * k * dh):
    raise ValueError(f"prompt_embeddings has shape {emb.shape}; this model needs ({p}, {n * 2 * k * dh}) "
                     f"= (num_virtual_tokens, layers*2*kv_heads*head_dim)")
  targets = r"decoder\.layers\.\d+\.attn(\.base)?$" if seq2seq else _HF_TARGETS
  core.apply(model, {"method": "prefix", "num_tokens": p, "targets": targets, "train_head": False})
  kv = emb.reshape(p, n, 2, k, dh)
  blocks = list(_hf_prefix_layers(n) if seq2seq else range(n))
  if _stacked(model, stack) is not None:  # one stacked Attention: write all layers at once
    hf_io.assign(layers[0].extra_kv.prefix_k, kv[:, blocks, 0].swapaxes(0, 1), "prefix keys")
    hf_io.assign(layers[0].extra_kv.prefix_v, kv[:, blocks, 1].swapaxes(0, 1), "prefix values")
    return rest
  for i, (attn, blk) in enumerate(zip(layers, blocks)):
    hf_io.assign(attn.extra_kv.prefix_k, kv[:, blk, 0], f"prefix keys of layer {i}")
    hf_io.assign(attn.extra_kv.prefix_v, kv[:, blk, 1], f"prefix values of layer {i}")
  return rest


hf_io.register_hf(hf_io.HFMethod("PREFIX_TUNING", _has_prefix, _save_hf, _load_hf, prompt_learning=True))
