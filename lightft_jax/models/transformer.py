"""The Transformer: embeddings -> stack(s) of blocks -> head. Read top to bottom.

Module paths (what PEFT `targets` regexes match):
  embed.tokens | embed.positions | embed.token_types | embed.norm
  {encoder,decoder}.layers.{i}.{attn,cross_attn}.{query,key,value,qkv,out}
  {encoder,decoder}.layers.{i}.{attn_norm,cross_attn_norm,mlp_norm}
  {encoder,decoder}.layers.{i}.mlp.{gate,up,down}
  {encoder,decoder}.final_norm | {encoder,decoder}.rel_bias | pooler | lm_head | head.*

Extension slots (extensions.py): `input_transform` on the Transformer, `extra_kv` on every Attention.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from lightft_jax.models.config import TransformerConfig
from lightft_jax.models.extensions import Inputs, extra_kv_length, is_layer_shared
from lightft_jax.models.heads import make_head
from lightft_jax.models.layers import Attention, Ctx, Dense, Embedding, MLP, Norm, RelativePositionBias

TASKS = ("base", "lm", "classification", "token_classification", "qa", "regression")
PER_POSITION_TASKS = ("lm", "token_classification", "qa")  # logits [B,T,...]: one row per input position


class Embeddings(nnx.Module):
  """Token (+ learned position) (+ token type) embeddings, optional LayerNorm (BERT)."""

  def __init__(self, cfg: TransformerConfig, rngs: nnx.Rngs):
    self.cfg = cfg
    self.tokens = Embedding(cfg.vocab_size, cfg.d_model, axes=("vocab", "embed"), cfg=cfg, rngs=rngs)
    self.positions = (Embedding(cfg.max_positions + cfg.position_offset, cfg.d_model, axes=(None, "embed"),
                                cfg=cfg, rngs=rngs) if cfg.position == "learned" else None)
    self.token_types = (Embedding(cfg.type_vocab_size, cfg.d_model, axes=(None, "embed"), cfg=cfg, rngs=rngs)
                        if cfg.type_vocab_size else None)
    self.norm = Norm(cfg.d_model, cfg) if cfg.embed_norm else None
    self.dropout = nnx.Dropout(cfg.dropout, rngs=rngs)

  def __call__(self, input_ids=None, *, positions, token_type_ids=None, inputs_embeds=None, ctx: Ctx = None):
    x = self.tokens(input_ids, ctx) if inputs_embeds is None else inputs_embeds.astype(self.cfg.compute_dtype)
    if self.positions is not None:
      x = x + self.positions(positions + self.cfg.position_offset, ctx)
    if self.token_types is not None:
      tt = jnp.zeros(x.shape[:2], jnp.int32) if token_type_ids is None else token_type_ids
      x = x + self.token_types(tt, ctx)
    if self.norm is not None:
      x = self.norm(x, ctx)
    return self.dropout(x)


class Block(nnx.Module):
  """Self-attention (+ cross-attention) + MLP with pre- or post-LN residuals."""

  def __init__(self, cfg: TransformerConfig, rngs: nnx.Rngs, *, cross: bool = False):
    self.prenorm = cfg.prenorm
    self.attn_norm = Norm(cfg.d_model, cfg)
    self.attn = Attention(cfg, rngs)
    self.cross_attn_norm = Norm(cfg.d_model, cfg) if cross else None
    self.cross_attn = Attention(cfg, rngs, cross=True) if cross else None
    self.mlp_norm = Norm(cfg.d_model, cfg)
    self.mlp = MLP(cfg, rngs)
    self.dropout = nnx.Dropout(cfg.dropout, rngs=rngs)

  def _sublayer(self, x, norm, fn, ctx):
    if self.prenorm:
      return x + self.dropout(fn(norm(x, ctx)))
    return norm(x + self.dropout(fn(x)), ctx)

  def __call__(self, x, *, mask, bias=None, positions=None, cache=None, enc=None, enc_mask=None,
               enc_bias=None, ctx: Ctx = None):
    new_cache = None

    def self_attn(h):
      nonlocal new_cache
      y, new_cache = self.attn(h, mask=mask, bias=bias, positions=positions, cache=cache, ctx=ctx)
      return y

    x = self._sublayer(x, self.attn_norm, self_attn, ctx)
    if self.cross_attn is not None:
      cross = lambda h: self.cross_attn(h, mask=enc_mask, bias=enc_bias, kv_input=enc, ctx=ctx)[0]
      x = self._sublayer(x, self.cross_attn_norm, cross, ctx)
    x = self._sublayer(x, self.mlp_norm, lambda h: self.mlp(h, ctx), ctx)
    return x, new_cache


class Stack(nnx.Module):
  """n blocks (a Python list, or one stacked block scanned over layers) + optional final norm.

  Scanned (cfg.scan_layers): `layers` is one Block built under `nnx.vmap`, every variable stacked [L, ...] with
  the logical axis "layers" first, run with `nnx.scan` (each layer gets its slice). PEFT modules put into that
  Block are built the same way (peft.core.per_layer); variables marked `extensions.LAYER_SHARED` are not
  sliced but given whole to every layer.
  """

  def __init__(self, cfg: TransformerConfig, n_layers: int, rngs: nnx.Rngs, *, causal: bool, cross: bool = False):
    self.cfg, self.causal, self.n_layers = cfg, causal, n_layers
    self.rel_bias = RelativePositionBias(cfg, bidirectional=not causal, rngs=rngs) \
        if cfg.position == "relative" else None
    if cfg.scan_layers:
      @nnx.split_rngs(splits=n_layers)
      @nnx.vmap(in_axes=(0,), out_axes=0, transform_metadata={nnx.PARTITION_NAME: "layers"})
      def make(r):
        return Block(cfg, r, cross=cross)
      self.layers = make(rngs)
    else:
      self.layers = nnx.List([Block(cfg, rngs, cross=cross) for _ in range(n_layers)])
    self.final_norm = Norm(cfg.d_model, cfg) if cfg.final_norm else None
    self.dropout = nnx.Dropout(cfg.dropout, rngs=rngs)

  def _extra_kv_len(self) -> int:
    """P of the extra self-attention key/value slots (`Attention.extra_kv`; one P per stack) that sit before
    the sequence, 0 without (or for slots that state no `num_slots`: they get zero bias)."""
    blocks = [self.layers] if self.cfg.scan_layers else list(self.layers)
    exts = [e for e in (getattr(_attention(blk.attn), "extra_kv", None) for blk in blocks) if e is not None]
    return extra_kv_length(exts[0]) if exts else 0

  def __call__(self, x, *, mask, positions, q_pos=None, k_pos=None, cache=None, enc=None, enc_mask=None,
               ctx: Ctx = None):
    """x [B,T,D]; mask [B,1,T,S]; q_pos/k_pos are the absolute positions for relative bias.

    cache (optional) = {"k","v": [L,B,Smax,K,Dh], "index": int32}; returns (x, new cache).
    """
    bias = None
    if self.rel_bias is not None:
      p = self._extra_kv_len()  # extra slots sit just before the sequence, at positions -P..-1 (as HF peft's)
      bias = self.rel_bias(q_pos, jnp.concatenate([jnp.arange(-p, 0, dtype=k_pos.dtype), k_pos]) if p else k_pos)
    kw = dict(mask=mask, bias=bias, positions=positions, enc=enc, enc_mask=enc_mask, ctx=ctx)

    def run_block(block, h, layer_cache):
      return block(h, cache=layer_cache, **kw)

    if self.cfg.remat:
      run_block = nnx.remat(run_block)

    if self.cfg.scan_layers:
      block_axes = nnx.StateAxes({is_layer_shared: None, ...: 0})  # shared variables go whole to every layer

      @nnx.scan(in_axes=(block_axes, nnx.Carry, 0 if cache is not None else None), out_axes=(nnx.Carry, 0))
      def scan_fn(block, h, layer_cache):
        h, c = run_block(block, h, layer_cache)
        return h, (None if c is None else (c["k"], c["v"]))

      layer_caches = None if cache is None else {"k": cache["k"], "v": cache["v"],
                                                 "index": jnp.broadcast_to(cache["index"], (self.n_layers,))}
      x, kv = scan_fn(self.layers, x, layer_caches)
    else:
      kv = []
      for i, block in enumerate(self.layers):
        lc = None if cache is None else {"k": cache["k"][i], "v": cache["v"][i], "index": cache["index"]}
        x, c = run_block(block, x, lc)
        kv.append(None if c is None else (c["k"], c["v"]))
      kv = None if cache is None else (jnp.stack([a for a, _ in kv]), jnp.stack([b for _, b in kv]))
    if self.final_norm is not None:
      x = self.final_norm(x, ctx)
    new_cache = None if cache is None else {"k": kv[0], "v": kv[1], "index": cache["index"] + x.shape[1]}
    return self.dropout(x), new_cache


def _attention(module: nnx.Module) -> nnx.Module:
  """The Attention under any wrappers a PEFT method put around it (each keeps the wrapped module as `base`)."""
  while not isinstance(module, Attention) and hasattr(module, "base"):
    module = module.base
  return module


def default_positions(attention_mask: jax.Array) -> jax.Array:
  """Position ids from a [B,T] mask: 0,1,2,... over real tokens (works for left and right padding)."""
  return jnp.maximum(jnp.cumsum(attention_mask.astype(jnp.int32), -1) - 1, 0)


class Transformer(nnx.Module):
  """Encoder, decoder or encoder-decoder with one task head.

  `__call__` returns a dict: `logits` (head output), `hidden_states` (last stack output [B,T,D]),
  and, as relevant, `pooled`, `encoder_hidden_states`, `cache`.

  `input_transform` (None, or an `extensions.InputTransform` a PEFT method sets) maps the embedded encoder /
  decoder-only input before the first stack; see `transform_inputs`.
  """

  def __init__(self, cfg: TransformerConfig, *, task: str = "lm", num_labels: int | None = None,
               head_style: str | None = None, rngs: nnx.Rngs):
    if task not in TASKS:
      raise ValueError(f"unknown task {task!r}; choose from {TASKS}")
    self.cfg, self.task = cfg, task
    self.embed = Embeddings(cfg, rngs)
    if cfg.arch in ("encoder", "encoder_decoder"):
      self.encoder = Stack(cfg, cfg.n_layers, rngs, causal=False)
    if cfg.arch in ("decoder", "encoder_decoder"):
      n = cfg.n_layers if cfg.arch == "decoder" else cfg.num_decoder_layers
      self.decoder = Stack(cfg, n, rngs, causal=True, cross=cfg.arch == "encoder_decoder")
    self.pooler = Dense(cfg.d_model, cfg.d_model, axes=("embed", "embed_out"), use_bias=True, cfg=cfg,
                        rngs=rngs) if cfg.pooler else None
    untied_lm = task == "lm" and not cfg.tie_embeddings
    self.lm_head = Dense(cfg.d_model, cfg.vocab_size, axes=("embed", "vocab"), use_bias=False, cfg=cfg,
                         rngs=rngs) if untied_lm else None
    self.head = make_head(cfg, task, num_labels, head_style, rngs)
    self.input_transform = nnx.data(None)  # an extensions.InputTransform, set by PEFT methods

  # ------------------------------------------------------------------ pieces
  def _check_length(self, t: int, what: str):
    if self.cfg.position in ("learned", "rope") and t > self.cfg.max_positions:
      raise ValueError(f"{what} has length {t} but the model allows at most {self.cfg.max_positions} positions")

  def encode(self, input_ids=None, attention_mask=None, token_type_ids=None, positions=None, inputs_embeds=None,
             ctx: Ctx = None):
    """Runs the encoder stack. Returns hidden states [B,T,D]."""
    x_ref = input_ids if inputs_embeds is None else inputs_embeds
    b, t = x_ref.shape[:2]
    self._check_length(t, "input")
    if attention_mask is None:
      attention_mask = jnp.ones((b, t), jnp.int32)
    if positions is None:
      positions = default_positions(attention_mask)
    x = self.embed(input_ids, positions=positions, token_type_ids=token_type_ids, inputs_embeds=inputs_embeds,
                   ctx=ctx)
    mask = attention_mask.astype(bool)[:, None, None, :]
    pos = jnp.arange(t)
    h, _ = self.encoder(x, mask=mask, positions=positions, q_pos=pos, k_pos=pos, ctx=ctx)
    return h

  def decode(self, input_ids=None, attention_mask=None, positions=None, *, enc=None, enc_mask=None,
             cache=None, inputs_embeds=None, segment_ids=None, ctx: Ctx = None):
    """Runs the causal stack. With a cache, `attention_mask` covers all cache slots [B,Smax].

    `segment_ids` [B,T] (packed sequences): a token attends only within its own segment; with a cache, also to
    every slot before the cache's index (a prefix that every packed sequence continues).
    """
    x_ref = input_ids if inputs_embeds is None else inputs_embeds
    b, t = x_ref.shape[:2]
    start = 0 if cache is None else cache["index"]
    s = t if cache is None else cache["k"].shape[2]
    if cache is None:
      self._check_length(t, "input")
    if attention_mask is None:
      attention_mask = jnp.ones((b, s), jnp.int32)
    if positions is None:
      positions = default_positions(attention_mask)[:, :t] if cache is None else \
          jnp.broadcast_to(start + jnp.arange(t), (b, t))
    x = self.embed(input_ids, positions=positions, inputs_embeds=inputs_embeds, ctx=ctx)
    q_pos = start + jnp.arange(t)
    k_pos = jnp.arange(s)
    causal = k_pos[None, :] <= q_pos[:, None]  # [T,S]
    if self.cfg.sliding_window is not None:  # Mistral: a query sees its own and the W-1 previous slots
      causal = causal & (k_pos[None, :] > q_pos[:, None] - self.cfg.sliding_window)
    mask = causal[None, None] & attention_mask.astype(bool)[:, None, None, :]
    if segment_ids is not None:
      if cache is None:
        same = segment_ids[:, :, None] == segment_ids[:, None, :]
      else:  # slots not written by this call hold no segment (-1); those before it are the shared prefix
        slot_seg = jax.lax.dynamic_update_slice(jnp.full((b, s), -1, segment_ids.dtype), segment_ids, (0, start))
        same = (segment_ids[:, :, None] == slot_seg[:, None, :]) | (k_pos < start)[None, None, :]
      mask = mask & same[:, None]
    if enc is not None:
      enc_mask = (jnp.ones(enc.shape[:2], bool) if enc_mask is None else enc_mask.astype(bool))[:, None, None, :]
    return self.decoder(x, mask=mask, positions=positions, q_pos=q_pos, k_pos=k_pos, cache=cache, enc=enc,
                        enc_mask=enc_mask, ctx=ctx)

  def transform_inputs(self, input_ids=None, attention_mask=None, token_type_ids=None, positions=None,
                       inputs_embeds=None, ctx: Ctx = None) -> Inputs:
    """The input transform applied to the embedded input: token embeddings of `input_ids` [B,T] (or the given
    `inputs_embeds` [B,T,D]) and a mask of ones when none is given -> `Inputs` of length A+T."""
    x = self.embed.tokens(input_ids, ctx) if inputs_embeds is None else inputs_embeds
    if attention_mask is None:
      attention_mask = jnp.ones(x.shape[:2], jnp.int32)
    return self.input_transform(Inputs(x, attention_mask, token_type_ids, positions), ctx)

  def align_outputs(self, out: dict[str, Any]) -> dict[str, Any]:
    """Drops the A positions the input transform added from `hidden_states` and per-position logits."""
    a = self.input_transform.added_length
    out["hidden_states"] = out["hidden_states"][:, a:]
    if self.task in PER_POSITION_TASKS and "logits" in out:
      out["logits"] = out["logits"][:, a:]
    return out

  def lm_logits(self, h: jax.Array) -> jax.Array:
    if self.lm_head is not None:
      return self.lm_head(h)
    if self.cfg.scale_tied_logits:
      h = h * self.cfg.d_model ** -0.5
    return self.embed.tokens.attend(h)

  def init_cache(self, batch_size: int, max_length: int, dtype=None) -> dict:
    """Empty KV cache for `max_length` slots: {"k","v": [L,B,S,K,Dh], "index": 0}."""
    c = self.cfg
    n = c.n_layers if c.arch == "decoder" else c.num_decoder_layers
    if c.position in ("learned", "rope") and max_length > c.max_positions:
      raise ValueError(f"cache of {max_length} slots exceeds the model's {c.max_positions} positions")
    shape = (n, batch_size, max_length, c.num_kv_heads, c.dim_head)
    dt = dtype or c.compute_dtype
    return {"k": jnp.zeros(shape, dt), "v": jnp.zeros(shape, dt), "index": jnp.zeros((), jnp.int32)}

  # ------------------------------------------------------------------ forward
  def __call__(self, input_ids=None, attention_mask=None, token_type_ids=None, positions=None, *,
               decoder_input_ids=None, decoder_attention_mask=None, encoder_hidden_states=None,
               inputs_embeds=None, cache=None, segment_ids=None, ctx: Ctx = None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    arch = self.cfg.arch
    if self.input_transform is not None:  # e.g. learned embeddings before the (encoder) input
      if cache is not None:
        raise ValueError("an input transform (e.g. prompt tuning) with a KV cache is not supported; run without "
                         "a cache")
      inputs_embeds, attention_mask, token_type_ids, positions = self.transform_inputs(
          input_ids, attention_mask, token_type_ids, positions, inputs_embeds, ctx)
      input_ids = None
    if arch == "encoder":
      h = self.encode(input_ids, attention_mask, token_type_ids, positions, inputs_embeds, ctx)
    elif arch == "decoder":
      h, out["cache"] = self.decode(input_ids, attention_mask, positions, cache=cache,
                                    inputs_embeds=inputs_embeds, segment_ids=segment_ids, ctx=ctx)
    else:
      enc = encoder_hidden_states
      if enc is None:
        enc = self.encode(input_ids, attention_mask, token_type_ids, positions, inputs_embeds, ctx)
      out["encoder_hidden_states"] = enc
      if decoder_input_ids is None:
        raise ValueError("encoder_decoder models need decoder_input_ids")
      h, out["cache"] = self.decode(decoder_input_ids, decoder_attention_mask, enc=enc, enc_mask=attention_mask,
                                    cache=cache, ctx=ctx)
    if out.get("cache") is None:
      out.pop("cache", None)
    out["hidden_states"] = h
    if self.pooler is not None:
      out["pooled"] = jnp.tanh(self.pooler(h[:, 0], ctx))
    if self.task == "lm":
      out["logits"] = self.lm_logits(h)
    elif self.head is not None:
      mask = attention_mask if arch != "encoder_decoder" else decoder_attention_mask
      out["logits"] = self.head(h, out.get("pooled"), mask, ctx)
    if self.input_transform is not None and arch != "encoder_decoder":
      out = self.align_outputs(out)
    return out
