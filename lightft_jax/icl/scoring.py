"""Log-likelihood of answer continuations under a decoder LM, sharing each context's KV cache.

For every example the context runs once through the model into a KV cache; the cache is then
repeated over the example's answer choices and all choices of the batch run in one call from it.
Shapes: B examples per batch, C choices, Tc context tokens (left padded), Lc choice tokens (right padded).
"""

from __future__ import annotations

import functools
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from lightft_jax.models.transformer import Transformer, default_positions


def _bucket(n: int, multiple: int) -> int:
  return max(multiple, -(-n // multiple) * multiple)


@functools.partial(jax.jit, static_argnums=0)
def _score_batch(graphdef, state, ctx_ids, ctx_mask, cont_ids, cont_mask):
  """ctx_ids/ctx_mask [B,Tc] (left padded); cont_ids/cont_mask [B,C,Lc] (right padded).

  Returns (log-prob sum [B,C], greedy [B,C] bool: every choice token is the argmax).
  """
  model = nnx.merge(graphdef, state)
  b, tc = ctx_ids.shape
  _, c, lc = cont_ids.shape
  cache = model.init_cache(b, tc + lc)
  slots_mask = jnp.concatenate([ctx_mask, jnp.ones((b, lc), ctx_mask.dtype)], 1)
  h, cache = model.decode(ctx_ids, slots_mask, default_positions(ctx_mask), cache=cache)
  first_logits = model.lm_logits(h[:, -1]).astype(jnp.float32)  # [B,V], predicts each choice's first token

  rep = lambda x: jnp.repeat(x, c, axis=0)
  cache = {"k": jnp.repeat(cache["k"], c, axis=1), "v": jnp.repeat(cache["v"], c, axis=1),
           "index": cache["index"]}
  ids = cont_ids.reshape(b * c, lc)
  mask = cont_mask.reshape(b * c, lc)
  positions = rep(ctx_mask.sum(-1))[:, None] + jnp.arange(lc)[None]
  h2, _ = model.decode(ids, jnp.concatenate([rep(ctx_mask), mask], 1), positions, cache=cache)
  logits = jnp.concatenate([rep(first_logits)[:, None], model.lm_logits(h2[:, :-1]).astype(jnp.float32)], 1)
  logp = jax.nn.log_softmax(logits, -1)
  tok = jnp.take_along_axis(logp, ids[..., None], -1)[..., 0]
  valid = mask.astype(bool)
  total = jnp.where(valid, tok, 0.0).sum(-1)
  greedy = jnp.all(jnp.where(valid, jnp.argmax(logits, -1) == ids, True), -1)
  return total.reshape(b, c), greedy.reshape(b, c)


def score_choices(model: Transformer, contexts: Sequence[Sequence[int]],
                  choices: Sequence[Sequence[Sequence[int]]], *, batch_size: int = 8, pad_id: int = 0,
                  ctx_bucket: int = 32) -> tuple[list[np.ndarray], list[np.ndarray]]:
  """Sum of log p(choice tokens | context) for every choice of every example.

  contexts: N token-id lists (non-empty); choices: N lists of C_i token-id lists (non-empty).
  Returns (loglik, greedy): N float arrays [C_i] and N bool arrays [C_i]. Batches are padded to
  fixed shapes (contexts to a multiple of `ctx_bucket`) so few shapes compile.
  """
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
  graphdef, state = nnx.split(model)
  c_max = max(len(ch) for ch in choices)
  lc = _bucket(max(len(x) for ch in choices for x in ch), 4)
  out_ll, out_greedy = [], []
  for start in range(0, len(contexts), batch_size):
    ctxs, chs = contexts[start:start + batch_size], choices[start:start + batch_size]
    tc = _bucket(max(len(x) for x in ctxs), ctx_bucket)
    limit = model.cfg.max_positions
    if model.cfg.position in ("learned", "rope") and tc + lc > limit:
      tc = max(len(x) for x in ctxs)
      if tc + lc > limit:
        raise ValueError(f"a context of {tc} tokens plus answers of up to {lc} tokens exceeds the model's "
                         f"{limit} positions")
    ctx_ids = np.full((batch_size, tc), pad_id, np.int32)
    ctx_mask = np.zeros((batch_size, tc), np.int32)
    cont_ids = np.full((batch_size, c_max, lc), pad_id, np.int32)
    cont_mask = np.zeros((batch_size, c_max, lc), np.int32)
    for r, (ctx, ch) in enumerate(zip(ctxs, chs)):
      ctx_ids[r, tc - len(ctx):], ctx_mask[r, tc - len(ctx):] = ctx, 1
      for j, x in enumerate(ch):
        cont_ids[r, j, :len(x)], cont_mask[r, j, :len(x)] = x, 1
    ctx_mask[len(ctxs):, -1] = 1  # filler rows: one valid token keeps their softmax finite
    ll, greedy = _score_batch(graphdef, state, ctx_ids, ctx_mask, cont_ids, cont_mask)
    ll, greedy = np.asarray(ll), np.asarray(greedy)
    for r, ch in enumerate(chs):
      out_ll.append(ll[r, :len(ch)])
      out_greedy.append(greedy[r, :len(ch)])
  return out_ll, out_greedy
