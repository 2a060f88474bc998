"""Autoregressive generation with a KV cache: one prefill call, then a jitted token-by-token loop.

Decoder-only models take LEFT-padded prompts [B,T]; positions come from the attention-mask cumsum
(`default_positions`), so every row continues from its own last real token. Encoder-decoder models
(T5) run the encoder once and decode from `decoder_start_token_id`; the decoder's cross-attention
recomputes the encoder keys/values at every step (the model's KV cache holds self-attention only).

The whole generation (prefill + `jax.lax.while_loop`) is one `jax.jit` over `nnx.split(model)`, so a
model is traced once per (batch, prompt length, max_new_tokens, sampling options). The loop stops as
soon as every row has emitted a stop token; a row that stopped emits `pad_token_id` afterwards.

Shapes: B batch, T prompt length, N max_new_tokens, V vocabulary.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from lightft_jax.models.transformer import default_positions


def filter_logits(logits: jax.Array, top_k: int = 0, top_p: float = 1.0) -> jax.Array:
  """Keeps the top-k and / or nucleus (top-p) tokens of logits [..., V]; the rest become -inf.

  top_k=0 and top_p=1.0 disable the respective filter. The nucleus is the smallest set of most likely
  tokens whose probability mass reaches `top_p` (the most likely token is always kept).
  """
  neg_inf = jnp.asarray(-jnp.inf, logits.dtype)
  if top_k > 0:
    kth = jax.lax.top_k(logits, min(top_k, logits.shape[-1]))[0][..., -1:]
    logits = jnp.where(logits < kth, neg_inf, logits)
  if top_p < 1.0:
    order = jnp.argsort(-logits, axis=-1)
    sorted_logits = jnp.take_along_axis(logits, order, -1)
    probs = jax.nn.softmax(sorted_logits, axis=-1)
    mass_before = jnp.cumsum(probs, -1) - probs  # probability of strictly more likely tokens
    keep_sorted = mass_before < top_p
    keep = jnp.take_along_axis(keep_sorted, jnp.argsort(order, axis=-1), -1)  # back to vocab order
    logits = jnp.where(keep, logits, neg_inf)
  return logits


def sample_next(logits: jax.Array, key: jax.Array | None, *, temperature: float, top_k: int,
                top_p: float) -> jax.Array:
  """Next token ids [B] from logits [B,V]: argmax when temperature == 0, else filtered sampling."""
  if temperature == 0.0:
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


def generate(model, input_ids, attention_mask=None, *, max_new_tokens: int, temperature: float = 0.0,
             top_k: int = 0, top_p: float = 1.0, stop_tokens=(), pad_token_id: int | None = None,
             rng: jax.Array | None = None, ctx: dict[str, Any] | None = None,
             decoder_start_token_id: int | None = None, return_logits: bool = False):
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
  if cfg.arch == "decoder":
    _check_left_padded(attention_mask)
    slots = t + max_new_tokens - 1
    if cfg.position in ("learned", "rope") and slots > cfg.max_positions:
      raise ValueError(f"prompt length {t} + max_new_tokens {max_new_tokens} - 1 = {slots} exceeds the model's "
                       f"max_positions={cfg.max_positions}")
  start = cfg.decoder_start_token_id if decoder_start_token_id is None else decoder_start_token_id
  pad = cfg.pad_token_id if pad_token_id is None else pad_token_id
  graphdef, state = nnx.split(nnx.view(model, deterministic=True, raise_if_not_found=False))
  key = jax.random.key(0) if rng is None else rng
  tokens, logits = _generate(graphdef, state, input_ids, attention_mask, key, ctx,
                             n_new=int(max_new_tokens), temperature=float(temperature), top_k=int(top_k),
                             top_p=float(top_p), stop_tokens=tuple(int(s) for s in stop_tokens), pad=int(pad),
                             start=int(start), keep_logits=bool(return_logits))
  return (tokens, logits) if return_logits else tokens


@functools.partial(jax.jit, static_argnums=(0,), static_argnames=(
    "n_new", "temperature", "top_k", "top_p", "stop_tokens", "pad", "start", "keep_logits"))
def _generate(graphdef, state, input_ids, attention_mask, key, ctx, *, n_new, temperature, top_k, top_p,
              stop_tokens, pad, start, keep_logits):
  """Prefill + while_loop. Returns tokens [B,N] and logits [B,N,V] (empty [B,N,0] unless keep_logits)."""
  b, t = input_ids.shape
  model = nnx.merge(graphdef, state)
  cfg = model.cfg

  if cfg.arch == "decoder":
    slots = t + n_new - 1
    # Slots after the prompt hold generated tokens; causality hides those not written yet.
    cache_mask = jnp.concatenate([attention_mask, jnp.ones((b, n_new - 1), jnp.int32)], 1)
    enc = enc_mask = None
    first_ids, first_pos = input_ids, default_positions(attention_mask)
    next_pos = jnp.sum(attention_mask, -1)  # position of the first generated token, per row
  else:
    slots = n_new
    cache_mask = jnp.ones((b, slots), jnp.int32)
    enc = model.encode(input_ids, attention_mask, ctx=ctx)
    enc_mask = attention_mask
    first_ids = jnp.full((b, 1), start, jnp.int32)
    first_pos, next_pos = jnp.zeros((b, 1), jnp.int32), jnp.ones((b,), jnp.int32)

  def forward(ids, positions, cache):
    """Runs ids [B,t] through the decoder with the cache; returns last-position logits [B,V] and cache."""
    m = nnx.merge(graphdef, state)  # a fresh module per trace level (the loop body is its own trace)
    h, cache = m.decode(ids, cache_mask, positions, enc=enc, enc_mask=enc_mask, cache=cache, ctx=ctx)
    return m.lm_logits(h[:, -1]).astype(jnp.float32), cache

  stops = jnp.asarray(stop_tokens if stop_tokens else (-1,), jnp.int32)
  vocab_kept = cfg.vocab_size if keep_logits else 0

  def emit(i, logits, key, tokens, all_logits, done):
    """Chooses token i from logits [B,V]; stopped rows get pad."""
    key, sub = jax.random.split(key)
    tok = sample_next(logits, sub, temperature=temperature, top_k=top_k, top_p=top_p)
    tok = jnp.where(done, pad, tok)
    tokens = tokens.at[:, i].set(tok)
    if keep_logits:
      all_logits = all_logits.at[:, i].set(logits)
    return tok, key, tokens, all_logits, done | jnp.isin(tok, stops)

  logits, cache = forward(first_ids, first_pos, model.init_cache(b, slots))
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
