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

Right padding under a KV cache: pad slots sit after a row's real tokens, so causality hides them from the
real tokens of that row, and the slot mask hides them from the choice tokens that follow in the cache.
Positions are the true ones (prefix length + offset), so RoPE and learned positions see the same inputs as
an unpadded forward pass. Shapes: B rows, Pb prefix slots, T suffix slots, C choices, Lc choice tokens.
"""

from __future__ import annotations

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


@functools.partial(jax.jit, static_argnums=0)
def _prefill(graphdef, state, ids, mask):
  """ids/mask [1,Pb] (right padded prefix) -> keys, values [L,1,Pb,K,Dh]."""
  model = nnx.merge(graphdef, state)
  _, cache = model.decode(ids, mask, default_positions(mask), cache=_zeros_cache(model, 1, ids.shape[1]))
  return cache["k"], cache["v"]


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
    pb = 0 if prefix is None else prefix[0].shape[2]
    extra = 0 if one_token else lc
    cache = _zeros_cache(model, b, pb + t + extra)
    pre_mask = jnp.zeros((b, 0), jnp.int32)
    if prefix is not None:
      pk, pv, pm, _ = prefix
      rows = lambda x: jnp.broadcast_to(x, x.shape[:1] + (b,) + x.shape[2:])
      cache["k"] = jax.lax.dynamic_update_slice_in_dim(cache["k"], rows(pk), 0, 2)
      cache["v"] = jax.lax.dynamic_update_slice_in_dim(cache["v"], rows(pv), 0, 2)
      pre_mask = jnp.broadcast_to(pm[None], (b, pb)).astype(jnp.int32)
    cache["index"] = jnp.int32(pb)
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
                  ctx_bucket: int | None = None, min_prefix: int = 16,
                  prefix_bucket: int = 64) -> tuple[list[np.ndarray], list[np.ndarray]]:
  """Sum of log p(choice tokens | context) for every choice of every example.

  contexts: N token-id lists (non-empty); choices: N lists of C_i token-id lists (non-empty).
  batch_size: queries per forward pass. ctx_bucket: pad suffixes to a multiple of this instead of
  `bucket_length`'s graded buckets. min_prefix: the shortest common prefix that runs once into a shared
  cache (a larger value than any context turns the sharing off). prefix_bucket: the prefix cache is padded
  to a multiple of this many slots. Returns (loglik, greedy): N float arrays [C_i] and N bool arrays [C_i].
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
