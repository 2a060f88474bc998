"""Log-likelihood of answer continuations under a decoder LM: shared prefix cache, length-sorted batches.

`score_choices(model, contexts, choices)` returns, for every context and each of its answer choices, the sum
of log p(choice tokens | context). How it gets there cheaply:

- **Shared prefix.** The longest token prefix common to all contexts (in few-shot prompts: the instruction
  and the demonstrations, when every query of a (seed, k) shares them) runs once, batch 1, into a KV cache.
  Every batch of queries starts from that cache and runs only its own tokens (the suffix). A prefix shorter
  than `min_prefix` tokens is not worth a separate pass and is left inside the suffixes.
- **Length-aware batches.** Suffixes are sorted by length, cut into batches of `batch_size`, right padded to
  a bucket just above the batch's longest suffix (`bucket_length`), and the scores are put back in input
  order. The prefix cache is padded to a bucket of `prefix_bucket` slots. So few shapes compile.
- **One-token answers.** When every choice is one token, the next-token distribution at each row's last
  token gives all scores: one forward pass, logits at one position per row. Longer choices continue from
  the batch's cache, repeated over the choices, in a second call (all choices of the batch at once).
- **Packed rows (one-token answers).** Queries (after the shared prefix, if any) are short and uneven, so
  padding each batch to its longest wastes much of the work. Instead they are packed end to end into rows
  of `row_len` tokens (best-fit decreasing, `pack_rows`); a segment mask keeps each query to its own tokens
  (and the shared prefix's cache slots, which every row starts from) and positions restart after the prefix
  in every query, so each query sees exactly what it sees alone. `row_len` is the candidate length with the
  fewest estimated FLOPs (dense layers per token plus attention over the prefix and the row, `_pick_row_len`).
  Rows go `token_budget // row_len` to a call (the remainder in power-of-two calls: no filler rows, few
  shapes), and the LM head runs only at each query's last token.

Right padding under a KV cache: pad slots sit after a row's real tokens, so causality hides them from the
real tokens of that row, and the slot mask hides them from the choice tokens that follow in the cache.
Positions are the true ones (prefix length + offset), so RoPE and learned positions see the same inputs as
an unpadded forward pass. Shapes: B rows, Pb prefix slots, T suffix slots, C choices, Lc choice tokens.
"""

from __future__ import annotations

import bisect
import functools
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from lightft_jax.models.transformer import Transformer, default_positions


def _round_up(n: int, multiple: int) -> int:
  return max(multiple, -(-n // multiple) * multiple)


def bucket_length(n: int) -> int:
  """Padded length for a batch whose longest row has n tokens: a multiple of 8 up to 64, of 16 up to 256,
  then of 32: at most 7, 15 or 31 pad tokens (25% at worst, just past 64)."""
  if n <= 64:
    return _round_up(n, 8)
  if n <= 256:
    return _round_up(n, 16)
  return _round_up(n, 32)


def common_prefix_length(seqs: Sequence[Sequence[int]]) -> int:
  """Length of the longest token prefix shared by all sequences."""
  first = list(seqs[0])
  n = min(len(s) for s in seqs)
  for s in seqs[1:]:
    s = list(s[:n])
    i = 0
    while i < n and s[i] == first[i]:
      i += 1
    n = i
    if n == 0:
      break
  return n


def pack_rows(lengths: Sequence[int], row_len: int) -> list[list[int]]:
  """Best-fit decreasing bin packing: lists of item indices whose lengths sum to at most `row_len` each
  (every length must be <= row_len). Longest items first, each into the row it fills most tightly."""
  free: list[tuple[int, int]] = []  # sorted (free slots, row index)
  rows: list[list[int]] = []
  for i in sorted(range(len(lengths)), key=lambda i: -lengths[i]):
    n = lengths[i]
    j = bisect.bisect_left(free, (n, -1))
    if j < len(free):
      space, r = free.pop(j)
    else:
      space, r = row_len, len(rows)
      rows.append([])
    rows[r].append(i)
    bisect.insort(free, (space - n, r))
  return rows


def _layer_flops_per_token(cfg) -> tuple[float, float]:
  """(dense FLOPs per token and layer, attention FLOPs per token, layer and key slot)."""
  d, h, k, dh, f = cfg.d_model, cfg.n_heads, cfg.num_kv_heads, cfg.dim_head, cfg.d_ff
  dense = 2 * (d * (h + 2 * k) * dh + h * dh * d + (3 if cfg.gated_mlp else 2) * d * f)
  return float(dense), float(4 * h * dh)


def _pick_row_len(model, lengths: Sequence[int], ctx_bucket: int | None, max_row_len: int,
                  prefix_slots: int = 0) -> int:
  """Row length for `pack_rows` with the fewest estimated FLOPs (dense layers on every slot, attention over
  the shared prefix's slots and the row): candidates from the longest prompt's bucket up to `max_row_len` (and
  the model's positions)."""
  round_up = (lambda n: _round_up(n, ctx_bucket)) if ctx_bucket else bucket_length
  positions = _position_limit(model) or max(max_row_len, max(lengths))
  first = min(round_up(max(lengths)), positions)  # _check made sure every prompt fits the positions
  limit = max(first, min(max_row_len, positions))
  dense, attn = _layer_flops_per_token(model.cfg)
  best, best_cost = first, None
  cand = first
  while cand <= limit:
    cost = len(pack_rows(lengths, cand)) * cand * (dense + attn * (prefix_slots + cand))
    if best_cost is None or cost < best_cost:
      best, best_cost = cand, cost
    cand = round_up(cand + 1)
  return best


def _position_limit(model) -> int | None:
  return model.cfg.max_positions if model.cfg.position in ("learned", "rope") else None


@functools.partial(jax.jit, static_argnums=0)
def _score_packed(graphdef, state, prefix, ids, segments, positions, last, cont_ids, cont_mask):
  """Prompts (after an optional shared prefix, as in `_score_batch`) packed end to end into rows, one-token answers.

  ids/segments/positions [R,S]: token ids, the prompt each slot holds (1, 2, ... within a row; 0 for pad
  slots) and its position within that prompt (after the prefix). last [Q]: flat index (row * S + slot) of each
  scored prompt's last token (pads point anywhere). cont_ids/cont_mask [Q,C]: the one-token choices.
  Returns (log-prob [Q,C], greedy [Q,C] bool).
  """
  model = nnx.merge(graphdef, state)
  r, s = ids.shape
  # pads: a segment of their own; every prompt sees the prefix's slots (the cache's, before its index)
  cache, pre_mask = (None, jnp.zeros((r, 0), jnp.int32)) if prefix is None else _cache_after(model, prefix, r, s)
  start = 0 if prefix is None else prefix[3]
  h, _ = model.decode(ids, jnp.concatenate([pre_mask, jnp.ones_like(ids)], 1), start + positions, cache=cache,
                      segment_ids=segments)
  h_last = jnp.take(h.reshape(r * s, -1), last, axis=0)  # [Q,D]
  logits = model.lm_logits(h_last).astype(jnp.float32)  # [Q,V]
  logp = jax.nn.log_softmax(logits, -1)
  ll = jnp.take_along_axis(logp, cont_ids, -1)
  greedy = jnp.argmax(logits, -1)[:, None] == cont_ids
  return jnp.where(cont_mask.astype(bool), ll, 0.0), greedy


def _call_sizes(n_rows: int, rows_per_call: int) -> list[int]:
  """Rows per call: full calls of `rows_per_call`, the rest in descending powers of two (no filler rows)."""
  sizes = [rows_per_call] * (n_rows // rows_per_call)
  rest = n_rows % rows_per_call
  while rest:
    p = 1 << (rest.bit_length() - 1)
    sizes.append(p)
    rest -= p
  return sizes


def _score_packed_all(model, graphdef, state, prefix, contexts, choices, c_max, pad_id, ctx_bucket, token_budget,
                      max_row_len):
  lengths = [len(c) for c in contexts]
  row_len = _pick_row_len(model, lengths, ctx_bucket, max_row_len, 0 if prefix is None else prefix[0].shape[2])
  rows = pack_rows(lengths, row_len)
  rows.sort(key=len, reverse=True)  # rows with many prompts together: fewer scored slots per call
  out_ll: list[np.ndarray | None] = [None] * len(contexts)
  out_greedy: list[np.ndarray | None] = [None] * len(contexts)
  start = 0
  for n_rows in _call_sizes(len(rows), max(1, token_budget // row_len)):
    call = rows[start:start + n_rows]
    start += n_rows
    per_row = 1 << (max(map(len, call)) - 1).bit_length()  # scored slots per row, a power of two
    ids = np.full((n_rows, row_len), pad_id, np.int32)
    seg = np.zeros((n_rows, row_len), np.int32)
    pos = np.zeros((n_rows, row_len), np.int32)
    last = np.zeros((n_rows * per_row,), np.int32)
    cont_ids = np.full((n_rows * per_row, c_max), pad_id, np.int32)
    cont_mask = np.zeros((n_rows * per_row, c_max), np.int32)
    where = []
    for r, members in enumerate(call):
      off = 0
      for j, i in enumerate(members):
        n = lengths[i]
        ids[r, off:off + n], seg[r, off:off + n], pos[r, off:off + n] = contexts[i], j + 1, np.arange(n)
        q = r * per_row + j
        last[q] = r * row_len + off + n - 1
        for c, x in enumerate(choices[i]):
          cont_ids[q, c], cont_mask[q, c] = x[0], 1
        where.append((i, q))
        off += n
    ll, greedy = _score_packed(graphdef, state, prefix, ids, seg, pos, last, cont_ids, cont_mask)
    ll, greedy = np.asarray(ll), np.asarray(greedy)
    for i, q in where:
      out_ll[i] = ll[q, :len(choices[i])]
      out_greedy[i] = greedy[q, :len(choices[i])]
  return out_ll, out_greedy


@functools.partial(jax.jit, static_argnums=0)
def _prefill(graphdef, state, ids, mask):
  """ids/mask [1,Pb] (right padded prefix) -> keys, values [L,1,Pb,K,Dh]."""
  model = nnx.merge(graphdef, state)
  _, cache = model.decode(ids, mask, default_positions(mask), cache=_zeros_cache(model, 1, ids.shape[1]))
  return cache["k"], cache["v"]


def _cache_after(model, prefix, b, slots):
  """A cache for b rows whose first Pb slots hold the shared prefix (keys and values repeated over the rows) and
  `slots` more are free, its index at Pb; and the prefix slots' mask [b,Pb]."""
  pk, pv, pm, _ = prefix
  pb = pk.shape[2]
  cache = _zeros_cache(model, b, pb + slots)
  rows = lambda x: jnp.broadcast_to(x, x.shape[:1] + (b,) + x.shape[2:])
  cache["k"] = jax.lax.dynamic_update_slice_in_dim(cache["k"], rows(pk), 0, 2)
  cache["v"] = jax.lax.dynamic_update_slice_in_dim(cache["v"], rows(pv), 0, 2)
  cache["index"] = jnp.int32(pb)
  return cache, jnp.broadcast_to(pm[None], (b, pb)).astype(jnp.int32)


def _zeros_cache(model, b, slots):
  """Empty cache as `Transformer.init_cache` makes it, without its slot limit (pad slots have no position)."""
  c = model.cfg
  shape = (c.n_layers, b, slots, c.num_kv_heads, c.dim_head)
  return {"k": jnp.zeros(shape, c.compute_dtype), "v": jnp.zeros(shape, c.compute_dtype),
          "index": jnp.zeros((), jnp.int32)}


@functools.partial(jax.jit, static_argnums=(0, 1))
def _score_batch(graphdef, one_token, state, prefix, ids, mask, cont_ids, cont_mask):
  """One batch of suffixes after an optional shared prefix.

  prefix: None, or (keys [L,1,Pb,K,Dh], values, slot mask [Pb], prefix length P); ids/mask [B,T] (right
  padded suffixes); cont_ids/cont_mask [B,C,Lc] (right padded choices; Lc = 1 when `one_token`).
  Returns (log-prob sum [B,C], greedy [B,C] bool: every choice token is the argmax).
  """
  model = nnx.merge(graphdef, state)
  b, t = ids.shape
  _, c, lc = cont_ids.shape
  start = jnp.int32(0) if prefix is None else prefix[3]
  positions = start + jnp.broadcast_to(jnp.arange(t, dtype=jnp.int32), (b, t))
  last = mask.sum(-1) - 1  # each row's last real suffix token
  if prefix is None and one_token:
    h, _ = model.decode(ids, mask, positions)
  else:
    extra = 0 if one_token else lc
    if prefix is None:
      cache, pre_mask = _zeros_cache(model, b, t + extra), jnp.zeros((b, 0), jnp.int32)
    else:
      cache, pre_mask = _cache_after(model, prefix, b, t + extra)
    slots_mask = jnp.concatenate([pre_mask, mask, jnp.ones((b, extra), jnp.int32)], 1)
    h, cache = model.decode(ids, slots_mask, positions, cache=cache)
  h_last = jnp.take_along_axis(h, last[:, None, None], 1)[:, 0]  # [B,D]
  first_logits = model.lm_logits(h_last).astype(jnp.float32)  # [B,V]: predicts each choice's first token
  if one_token:
    logp = jax.nn.log_softmax(first_logits, -1)
    tok = cont_ids[..., 0]
    ll = jnp.take_along_axis(logp, tok, -1)
    greedy = jnp.argmax(first_logits, -1)[:, None] == tok
    return jnp.where(cont_mask[..., 0].astype(bool), ll, 0.0), greedy

  rep = lambda x: jnp.repeat(x, c, axis=0)
  cache = {"k": jnp.repeat(cache["k"], c, axis=1), "v": jnp.repeat(cache["v"], c, axis=1),
           "index": cache["index"]}  # the stack advanced it past the suffix slots
  flat_ids = cont_ids.reshape(b * c, lc)
  flat_mask = cont_mask.reshape(b * c, lc)
  choice_pos = rep(start + last + 1)[:, None] + jnp.arange(lc)[None]
  h2, _ = model.decode(flat_ids, jnp.concatenate([rep(slots_mask[:, :-lc]), flat_mask], 1), choice_pos, cache=cache)
  logits = jnp.concatenate([rep(first_logits)[:, None], model.lm_logits(h2[:, :-1]).astype(jnp.float32)], 1)
  logp = jax.nn.log_softmax(logits, -1)
  tok = jnp.take_along_axis(logp, flat_ids[..., None], -1)[..., 0]
  valid = flat_mask.astype(bool)
  total = jnp.where(valid, tok, 0.0).sum(-1)
  greedy = jnp.all(jnp.where(valid, jnp.argmax(logits, -1) == flat_ids, True), -1)
  return total.reshape(b, c), greedy.reshape(b, c)


def _check(model, contexts, choices):
  if model.cfg.arch != "decoder":
    raise ValueError(f"choice scoring needs a decoder-only language model, got arch={model.cfg.arch!r}")
  if model.task != "lm":
    raise ValueError(f"choice scoring needs a model built with task='lm', got task={model.task!r}")
  if len(contexts) != len(choices):
    raise ValueError(f"{len(contexts)} contexts but {len(choices)} choice lists")
  for i, (ctx, ch) in enumerate(zip(contexts, choices)):
    if not len(ctx):
      raise ValueError(f"example {i} has an empty context; start it with a BOS token or some text")
    if not ch or any(not len(x) for x in ch):
      raise ValueError(f"example {i} has no answer choices or an empty choice")
  if model.cfg.position in ("learned", "rope"):
    limit = model.cfg.max_positions
    lc = max(len(x) for ch in choices for x in ch)
    for ctx in contexts:
      if len(ctx) + lc > limit:
        raise ValueError(f"a context of {len(ctx)} tokens plus answers of up to {lc} tokens exceeds the model's "
                         f"{limit} positions")


def score_choices(model: Transformer, contexts: Sequence[Sequence[int]],
                  choices: Sequence[Sequence[Sequence[int]]], *, batch_size: int = 8, pad_id: int = 0,
                  ctx_bucket: int | None = None, min_prefix: int = 16, prefix_bucket: int = 64,
                  pack: bool = True, token_budget: int = 2048,
                  max_row_len: int = 256) -> tuple[list[np.ndarray], list[np.ndarray]]:
  """Sum of log p(choice tokens | context) for every choice of every example.

  contexts: N token-id lists (non-empty); choices: N lists of C_i token-id lists (non-empty).
  batch_size: queries per forward pass. ctx_bucket: pad suffixes to a multiple of this instead of
  `bucket_length`'s graded buckets. min_prefix: the shortest common prefix that runs once into a shared
  cache (a larger value than any context turns the sharing off). prefix_bucket: the prefix cache is padded
  to a multiple of this many slots. pack: one-token answers go through packed rows (module docstring) of up
  to `max_row_len` tokens (longer queries: their own bucket), `token_budget` slots per forward pass instead of
  `batch_size` queries; pack=False keeps the padded batches.
  Returns (loglik, greedy): N float arrays [C_i] and N bool arrays [C_i].
  """
  _check(model, contexts, choices)
  contexts = [[int(t) for t in ctx] for ctx in contexts]
  graphdef, state = nnx.split(model)
  n = len(contexts)
  c_max = max(len(ch) for ch in choices)
  one_token = all(len(x) == 1 for ch in choices for x in ch)
  lc = 1 if one_token else _round_up(max(len(x) for ch in choices for x in ch), 4)

  p = common_prefix_length(contexts) if n > 1 else 0
  p = min(p, min(len(x) for x in contexts) - 1)  # every row keeps at least its last token
  prefix = None
  if p >= min_prefix:
    pb = _round_up(p, prefix_bucket)
    ids = np.full((1, pb), pad_id, np.int32)
    pm = np.zeros((1, pb), np.int32)
    ids[0, :p], pm[0, :p] = contexts[0][:p], 1
    pk, pv = _prefill(graphdef, state, ids, pm)
    prefix = (pk, pv, jnp.asarray(pm[0]), jnp.int32(p))
  else:
    p = 0
  suffixes = [ctx[p:] for ctx in contexts]
  if one_token and pack:
    return _score_packed_all(model, graphdef, state, prefix, suffixes, choices, c_max, pad_id, ctx_bucket,
                             token_budget, max_row_len)

  order = sorted(range(n), key=lambda i: len(suffixes[i]))
  out_ll: list[np.ndarray | None] = [None] * n
  out_greedy: list[np.ndarray | None] = [None] * n
  for start in range(0, n, batch_size):
    rows = order[start:start + batch_size]
    longest = max(len(suffixes[i]) for i in rows)
    t = _round_up(longest, ctx_bucket) if ctx_bucket else bucket_length(longest)
    ids = np.full((batch_size, t), pad_id, np.int32)
    mask = np.zeros((batch_size, t), np.int32)
    cont_ids = np.full((batch_size, c_max, lc), pad_id, np.int32)
    cont_mask = np.zeros((batch_size, c_max, lc), np.int32)
    for r, i in enumerate(rows):
      ids[r, :len(suffixes[i])], mask[r, :len(suffixes[i])] = suffixes[i], 1
      for j, x in enumerate(choices[i]):
        cont_ids[r, j, :len(x)], cont_mask[r, j, :len(x)] = x, 1
    mask[len(rows):, 0] = 1  # filler rows: one valid token keeps their softmax finite
    ll, greedy = _score_batch(graphdef, one_token, state, prefix, ids, mask, cont_ids, cont_mask)
    ll, greedy = np.asarray(ll), np.asarray(greedy)
    for r, i in enumerate(rows):
      out_ll[i] = ll[r, :len(choices[i])]
      out_greedy[i] = greedy[r, :len(choices[i])]
  return out_ll, out_greedy
