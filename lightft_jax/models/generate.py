"""Autoregressive generation with a KV cache: one prefill call, then a jitted token-by-token loop.

Decoder-only models take LEFT-padded prompts [B,T]; positions come from the attention-mask cumsum
(`default_positions`), so every row continues from its own last real token. Encoder-decoder models
(T5) run the encoder once and decode from `decoder_start_token_id`; the decoder's cross-attention
recomputes the encoder keys/values at every step (the model's KV cache holds self-attention only).
The model's input transform (`model.input_transform`, e.g. a PEFT soft prompt; see extensions.py) applies to
the prompt, or the encoder input, exactly as in `Transformer.__call__`.

The whole generation (prefill + `jax.lax.while_loop`) is one `jax.jit` taking the model as a pytree (a flatten
costs a few ms even with hundreds of named adapters, where `nnx.split` / `nnx.view` outside the jit cost tenths
of a second; inference mode and hoisted invariants are set inside the trace). A model is traced once per
(batch, prompt length, max_new_tokens, greedy or sampling, return_logits); the sampling settings, stop ids
and pad / start ids are traced values. The loop stops as soon as every row has emitted a stop token; a row
that stopped emits `pad_token_id` afterwards.

Shapes: B batch, T prompt length, N max_new_tokens, V vocabulary.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from lightft_jax.models import extensions
from lightft_jax.models.transformer import default_positions


def filter_logits(logits: jax.Array, top_k=0, top_p=1.0) -> jax.Array:
  """Keeps the top-k, then the nucleus (top-p), tokens of logits [..., V]; the rest become -inf.

  top_k=0 and top_p=1.0 disable the respective filter; both may be traced scalars. The nucleus is the
  smallest set of most likely tokens whose probability mass (renormalised after top-k) reaches `top_p`;
  the most likely token is always kept, and so are ties with the last kept logit.
  """
  v = logits.shape[-1]
  neg_inf = jnp.asarray(-jnp.inf, logits.dtype)
  ranked = jnp.flip(jnp.sort(logits, -1), -1)  # descending
  rank = jnp.arange(v)
  in_top_k = rank < jnp.where(top_k > 0, top_k, v)
  ranked = jnp.where(in_top_k, ranked, neg_inf)
  probs = jax.nn.softmax(ranked, -1)
  mass_before = jnp.cumsum(probs, -1) - probs  # mass of strictly more likely tokens
  keep = in_top_k & ((mass_before < top_p) | (top_p >= 1.0))
  n_keep = jnp.maximum(jnp.sum(keep, -1, keepdims=True), 1)
  cutoff = jnp.take_along_axis(ranked, n_keep - 1, -1)
  return jnp.where(logits >= cutoff, logits, neg_inf)


def sample_next(logits: jax.Array, key: jax.Array | None, *, temperature, top_k=0, top_p=1.0,
                greedy: bool = False) -> jax.Array:
  """Next token ids [B] from logits [B,V]: argmax if `greedy`, else sampling from
  softmax(filter_logits(logits / temperature, top_k, top_p)). temperature/top_k/top_p may be traced."""
  if greedy:
    return jnp.argmax(logits, -1).astype(jnp.int32)
  logits = filter_logits(logits.astype(jnp.float32) / temperature, top_k, top_p)
  return jax.random.categorical(key, logits, axis=-1).astype(jnp.int32)


def _check_args(model, input_ids, max_new_tokens, temperature, top_k, top_p, rng):
  if getattr(model, "task", None) != "lm":
    raise ValueError(f"generate needs a model built with task='lm', got task={getattr(model, 'task', None)!r}")
  if model.cfg.arch not in ("decoder", "encoder_decoder"):
    raise ValueError(f"generate needs arch 'decoder' or 'encoder_decoder', got {model.cfg.arch!r}")
  if input_ids.ndim != 2:
    raise ValueError(f"input_ids must be [batch, length], got shape {input_ids.shape}")
  if not isinstance(max_new_tokens, (int, np.integer)) or max_new_tokens < 1:
    raise ValueError(f"max_new_tokens must be a positive int, got {max_new_tokens!r}")
  if temperature < 0:
    raise ValueError(f"temperature must be >= 0 (0 is greedy), got {temperature}")
  if top_k < 0:
    raise ValueError(f"top_k must be >= 0 (0 disables it), got {top_k}")
  if not 0.0 < top_p <= 1.0:
    raise ValueError(f"top_p must be in (0, 1] (1 disables it), got {top_p}")
  if temperature > 0 and rng is None:
    raise ValueError("sampling (temperature > 0) needs rng=jax.random.key(seed)")


def _check_left_padded(attention_mask):
  """Host-side check that decoder prompts are left-padded (skipped when the mask is traced)."""
  try:
    m = np.asarray(attention_mask)
  except jax.errors.TracerArrayConversionError:
    return
  if not m[:, -1].all():
    raise ValueError("decoder-only prompts must be LEFT-padded: attention_mask[:, -1] must be 1 in every row")


def _stop_array(stop_tokens) -> jax.Array:
  """Stop ids padded with -1 to a multiple of 8 entries, so most stop sets share one compilation."""
  ids = [int(s) for s in stop_tokens]
  size = max(8, -(-len(ids) // 8) * 8)
  return jnp.asarray(ids + [-1] * (size - len(ids)), jnp.int32)


def prefix_cache(model, prefix_ids, *, slots: int | None = None) -> dict:
  """A token prefix shared by every row, run once (batch 1) into a KV cache, for `generate(prefix=...)`.

  prefix_ids: P token ids. slots: cache slots Pb >= P (pad to a few sizes so later programs compile once).
  Returns {"k","v": [L,1,Pb,K,Dh], "mask": int32 [Pb], "length": P}.
  """
  p = len(prefix_ids)
  pb = p if slots is None else slots
  if pb < p or p < 1:
    raise ValueError(f"prefix of {p} tokens needs 1 <= length <= slots, got slots={pb}")
  ids = np.zeros((1, pb), np.int32)
  mask = np.zeros((1, pb), np.int32)
  ids[0, :p], mask[0, :p] = prefix_ids, 1
  k, v = _prefill(model, ids, mask)
  return {"k": k, "v": v, "mask": mask[0], "length": p}


@jax.jit
def _prefill(model, ids, mask):
  model = _for_decoding(model)
  _, cache = model.decode(ids, mask, default_positions(mask), cache=model.init_cache(*ids.shape))
  return cache["k"], cache["v"]


def generate(model, input_ids, attention_mask=None, *, max_new_tokens: int, temperature: float = 0.0,
             top_k: int = 0, top_p: float = 1.0, stop_tokens=(), pad_token_id: int | None = None,
             rng: jax.Array | None = None, ctx: dict[str, Any] | None = None,
             decoder_start_token_id: int | None = None, return_logits: bool = False,
             prefix: dict | None = None):
  """Generates up to `max_new_tokens` tokens after each prompt.

  Args:
    model: a `Transformer` with task="lm", arch "decoder" or "encoder_decoder".
    input_ids: int [B,T] prompts; LEFT-padded for decoder-only models (any padding for encoders).
    attention_mask: [B,T], 1 on real tokens; None means all ones.
    max_new_tokens: N, the number of tokens to produce per row.
    temperature: 0 for greedy decoding; > 0 samples from softmax(logits / temperature).
    top_k: keep only the k most likely tokens when sampling (0: off).
    top_p: keep only the nucleus of probability mass top_p when sampling (1.0: off).
    stop_tokens: token ids that end a row (the stop token is emitted, then `pad_token_id`).
    pad_token_id: filler after a row stopped; defaults to `model.cfg.pad_token_id`.
    rng: jax PRNG key, required when temperature > 0.
    ctx: per-call conditioning passed to every submodule (task ids, condition vectors, ...).
    decoder_start_token_id: first decoder token of encoder-decoder models; defaults to the config's.
    return_logits: also return the float32 logits each token was chosen from.
    prefix: decoder-only: a prefix shared by every row, already in a KV cache, that goes before each prompt:
      {"k","v": [L,1,Pb,K,Dh] (`prefix_cache`), "mask": [Pb] (1 on its real slots), "length": P}. Prompt
      positions then start at P.

  Returns:
    int32 [B,N] generated tokens, or (tokens, logits [B,N,V]) with `return_logits`. Logits of
    steps after every row stopped are zero.
  """
  input_ids = jnp.asarray(input_ids, jnp.int32)
  _check_args(model, input_ids, max_new_tokens, temperature, top_k, top_p, rng)
  cfg = model.cfg
  b, t = input_ids.shape
  attention_mask = jnp.ones((b, t), jnp.int32) if attention_mask is None else jnp.asarray(attention_mask, jnp.int32)
  if attention_mask.shape != (b, t):
    raise ValueError(f"attention_mask shape {attention_mask.shape} != input_ids shape {input_ids.shape}")
  if prefix is not None and (cfg.arch != "decoder" or model.input_transform is not None):
    raise ValueError("a cached prefix needs a decoder-only model without an input transform (soft prompt)")
  if cfg.arch == "decoder":
    _check_left_padded(attention_mask)
    n_added = 0 if model.input_transform is None else int(model.input_transform.added_length)
    n_added += 0 if prefix is None else int(prefix["length"])
    slots = n_added + t + max_new_tokens - 1
    if cfg.position in ("learned", "rope") and slots > cfg.max_positions:
      raise ValueError(f"added positions {n_added} + prompt length {t} + max_new_tokens {max_new_tokens} - 1 = "
                       f"{slots} exceeds the model's max_positions={cfg.max_positions}")
  start = cfg.decoder_start_token_id if decoder_start_token_id is None else decoder_start_token_id
  pad = cfg.pad_token_id if pad_token_id is None else pad_token_id
  key = jax.random.key(0) if rng is None else rng
  opts = dict(temperature=jnp.float32(max(temperature, 1e-6)), top_k=jnp.int32(top_k), top_p=jnp.float32(top_p),
              stops=_stop_array(stop_tokens), pad=jnp.int32(pad),
              start=jnp.int32(start))
  if prefix is not None:
    prefix = {"k": prefix["k"], "v": prefix["v"], "mask": jnp.asarray(prefix["mask"], jnp.int32),
              "length": jnp.int32(prefix["length"])}
  tokens, logits = _generate(model, input_ids, attention_mask, key, ctx, opts, prefix,
                             n_new=int(max_new_tokens), greedy=temperature == 0, keep_logits=bool(return_logits))
  return (tokens, logits) if return_logits else tokens


def _for_decoding(model):
  """Inside a trace: the model in inference mode (dropout off), per-call invariants hoisted (extensions item 5)."""
  return extensions.hoist(nnx.view(model, deterministic=True, raise_if_not_found=False))


@functools.partial(jax.jit, static_argnames=("n_new", "greedy", "keep_logits"))
def _generate(model, input_ids, attention_mask, key, ctx, opts, prefix, *, n_new, greedy, keep_logits):
  """Prefill + while_loop. Returns tokens [B,N] and logits [B,N,V] (empty [B,N,0] unless keep_logits).

  `opts` holds traced scalars (temperature, top_k, top_p, pad, start) and the stop ids [S], so changing
  them does not recompile; only greedy vs sampling, shapes and `keep_logits` do.
  """
  pad = opts["pad"]
  b, t = input_ids.shape
  model = _for_decoding(model)
  graphdef, state = nnx.split(model)
  cfg = model.cfg

  # The model's input transform (e.g. a soft prompt) maps the (encoder, or decoder-only) input, as in __call__.
  embeds, mask = None, attention_mask
  if model.input_transform is not None:
    embeds, mask, _, _ = model.transform_inputs(input_ids, attention_mask, ctx=ctx)
  cache = None
  if cfg.arch == "decoder":
    pb, start = (0, 0) if prefix is None else (prefix["k"].shape[2], prefix["length"])
    slots = pb + mask.shape[1] + n_new - 1
    # Slots after the prompt hold generated tokens; causality hides those not written yet.
    cache_mask = jnp.concatenate([mask, jnp.ones((b, n_new - 1), jnp.int32)], 1)
    cache = model.init_cache(b, slots)
    if prefix is not None:  # the shared prefix's keys/values fill the first Pb slots of every row
      rows = lambda x: jnp.broadcast_to(x, x.shape[:1] + (b,) + x.shape[2:]).astype(cache["k"].dtype)
      cache = {"k": cache["k"].at[:, :, :pb].set(rows(prefix["k"])),
               "v": cache["v"].at[:, :, :pb].set(rows(prefix["v"])), "index": jnp.int32(pb)}
      cache_mask = jnp.concatenate([jnp.broadcast_to(prefix["mask"][None], (b, pb)), cache_mask], 1)
    enc = enc_mask = None
    first_ids, first_pos = (input_ids if embeds is None else None), start + default_positions(mask)
    next_pos = start + jnp.sum(mask, -1)  # position of the first generated token, per row
  else:
    slots = n_new
    cache_mask = jnp.ones((b, slots), jnp.int32)
    enc = model.encode(input_ids if embeds is None else None, mask, inputs_embeds=embeds, ctx=ctx)
    enc_mask, embeds = mask, None
    first_ids = jnp.full((b, 1), opts["start"], jnp.int32)
    first_pos, next_pos = jnp.zeros((b, 1), jnp.int32), jnp.ones((b,), jnp.int32)

  def forward(ids, positions, cache, embeds=None):
    """Runs ids [B,t] (or embeds [B,t,D]) through the decoder with the cache; returns last-position
    logits [B,V] and the cache."""
    m = nnx.merge(graphdef, state, copy=True)  # fresh Variables at this trace level (the loop body is its own)
    h, cache = m.decode(ids, cache_mask, positions, enc=enc, enc_mask=enc_mask, cache=cache, inputs_embeds=embeds,
                        ctx=ctx)
    return m.lm_logits(h[:, -1]).astype(jnp.float32), cache

  vocab_kept = cfg.vocab_size if keep_logits else 0

  def emit(i, logits, key, tokens, all_logits, done):
    """Chooses token i from logits [B,V]; stopped rows get pad."""
    key, sub = jax.random.split(key)
    tok = sample_next(logits, sub, temperature=opts["temperature"], top_k=opts["top_k"], top_p=opts["top_p"],
                      greedy=greedy)
    tok = jnp.where(done, pad, tok)
    tokens = tokens.at[:, i].set(tok)
    if keep_logits:
      all_logits = all_logits.at[:, i].set(logits)
    return tok, key, tokens, all_logits, done | jnp.isin(tok, opts["stops"])

  logits, cache = forward(first_ids, first_pos, model.init_cache(b, slots) if cache is None else cache, embeds)
  tokens = jnp.full((b, n_new), pad, jnp.int32)
  all_logits = jnp.zeros((b, n_new, vocab_kept), jnp.float32)
  tok, key, tokens, all_logits, done = emit(0, logits, key, tokens, all_logits, jnp.zeros((b,), bool))

  def cond(carry):
    i, _, _, _, _, _, done, _ = carry
    return (i < n_new) & ~jnp.all(done)

  def body(carry):
    i, tok, pos, cache, key, tokens, done, all_logits = carry
    logits, cache = forward(tok[:, None], pos[:, None], cache)
    tok, key, tokens, all_logits, done = emit(i, logits, key, tokens, all_logits, done)
    return i + 1, tok, pos + 1, cache, key, tokens, done, all_logits

  carry = (jnp.int32(1), tok, next_pos, cache, key, tokens, done, all_logits)
  carry = jax.lax.while_loop(cond, body, carry)
  return carry[5], carry[7]
