"""Selective fine-tuning: train a chosen subset of the existing parameters.

  bitfit     every bias (Zaken et al. 2021), optionally only in modules matching `targets`
  layernorm  the scale (and bias) of every norm matching `targets`
  layers     whole blocks: the top `top_k` of each stack, or the blocks named in `layers`
  mask       by="regex": whole parameters whose path matches `params`;
             by="magnitude" | "grad": a sparse set of kernel entries of the Dense modules matching `targets`,
             the `density` fraction with the largest |w| or the largest accumulated squared gradient
             (`scores` from `grad_scores`, FISH-mask style), chosen over all targeted kernels together.

Whole parameters are re-typed as TunedParam (values unchanged). Sparse entries are a trainable delta
[k] at fixed flat indices of the kernel: y = base(x) + x @ scatter(delta) (`sparse_delta`, zeros at start).

Scanned stacks (scan_layers=True) hold each parameter of all L layers in one [L, ...] array, and what trains is
decided per parameter (its type), so `layers` (some layers of a stack) and the sparse masks (a different number
of entries per layer, chosen across layers) raise there; bitfit, layernorm and mask by="regex" re-type whole
stacked parameters (all layers), which works as on unrolled models. (Training some rows of a stacked parameter
would need a per-row gradient mask that weight decay still moves past, or a delta as large as the stack.)
"""

from __future__ import annotations

import re
from typing import Callable, Iterable

import jax
import jax.numpy as jnp
from flax import nnx

from lightft_jax.models.layers import Ctx, Dense, Norm
from lightft_jax.models.ops import linear
from lightft_jax.peft.core import (PeftParam, find_targets, get_module, make_trainable, module_paths, path_str,
                                   register, replace_module)


@register("bitfit", targets=".*")
def attach_bitfit(model, cfg, rngs):
  n = sum(make_trainable(m, ["bias"]) for m in find_targets(model, cfg.targets, what="bitfit").values())
  if not n:
    raise ValueError(f"bitfit found no bias parameters in modules matching {cfg.targets!r}")


@register("layernorm", targets=".*")
def attach_layernorm(model, cfg, rngs):
  for m in find_targets(model, cfg.targets, (Norm,), what="layernorm").values():
    make_trainable(m)


def _blocks(model) -> dict[str, list[str]]:
  """{"encoder": ["encoder.layers.0", ...], "decoder": [...]}."""
  out: dict[str, list[str]] = {}
  for path in module_paths(model):
    m = re.fullmatch(r"(\w+)\.layers\.(\d+)", path)
    if m:
      out.setdefault(m[1], []).append(path)
  return {k: sorted(v, key=lambda p: int(p.rsplit(".", 1)[1])) for k, v in out.items()}


@register("layers", top_k=None, layers=())
def attach_layers(model, cfg, rngs):
  """Layer-wise tuning: `top_k` blocks at the top of every stack, or named blocks ("decoder.layers.3" or 3)."""
  if model.cfg.scan_layers:
    raise ValueError("PEFT method 'layers' needs a model built with scan_layers=False: a scanned stack holds each "
                     "parameter of all its layers in one stacked [L, ...] array and what trains is decided per "
                     "parameter, so it trains all of a stack's layers or none (method='full' trains them all); set "
                     "model.overrides.scan_layers=False")
  blocks = _blocks(model)
  if (cfg.top_k is None) == (not cfg.layers):
    raise ValueError("method 'layers' needs exactly one of top_k=<int> or layers=[names or indices]")
  if cfg.top_k is not None:
    if cfg.top_k <= 0:
      raise ValueError(f"top_k must be >= 1, got {cfg.top_k}")
    chosen = [p for paths in blocks.values() for p in paths[-cfg.top_k:]]
  else:
    every = [p for paths in blocks.values() for p in paths]
    chosen = []
    for name in cfg.layers:
      hits = [p for p in every if p == name or (isinstance(name, int) and p.endswith(f".layers.{name}"))]
      if not hits:
        raise ValueError(f"no block {name!r}; blocks are {every}")
      chosen += hits
  for path in chosen:
    make_trainable(get_module(model, path))


class SparseParam(PeftParam):
  """Trainable values at a fixed sparse set of a kernel's entries."""


class SparseIndex(nnx.Variable):
  """Flat indices (into the kernel) of the trainable entries; never trained."""


class SparseDense(nnx.Module):
  """Dense whose kernel entries at `sparse_index` [k] move by `sparse_delta` [k]."""

  def __init__(self, base: Dense, index: jax.Array):
    self.base = base
    self.sparse_index = SparseIndex(index.astype(jnp.int32))
    self.sparse_delta = SparseParam(jnp.zeros(index.shape, base.kernel[...].dtype))

  def delta_kernel(self) -> jax.Array:
    """[in, out] with the deltas at their entries, zeros elsewhere."""
    k = self.base.kernel
    flat = jnp.zeros((k.size,), k[...].dtype).at[self.sparse_index[...]].set(self.sparse_delta[...])
    return flat.reshape(k.shape)

  def __call__(self, x: jax.Array, ctx: Ctx = None) -> jax.Array:
    return self.base(x, ctx) + linear(x.astype(self.base.dtype), self.delta_kernel().astype(self.base.dtype))


def grad_scores(model: nnx.Module, loss_fn: Callable, batches: Iterable, targets="all_linear") -> dict:
  """Accumulated squared gradients {module path: [in, out]} of the targeted Dense kernels.

  loss_fn(model, batch) -> scalar. Every batch adds grad**2 (the empirical Fisher diagonal).
  """
  paths = list(find_targets(model, targets, (Dense,), what="grad_scores"))
  graphdef, params, rest = nnx.split(model, nnx.Param, ...)

  @jax.jit
  def sq_grads(params, batch):
    g = jax.grad(lambda p: loss_fn(nnx.merge(graphdef, p, rest), batch))(params)
    return {p: jnp.square(get_module_state(g, p)) for p in paths}

  total = None
  for batch in batches:
    s = sq_grads(params, batch)
    total = s if total is None else jax.tree.map(jnp.add, total, s)
  if total is None:
    raise ValueError("grad_scores needs at least one batch")
  return total


def get_module_state(state, path: str) -> jax.Array:
  node = state
  for part in path.split("."):
    node = node[int(part) if part.isdigit() else part]
  return node["kernel"][...]


MASK_BY = ("regex", "magnitude", "grad")


@register("mask", by="regex", params=None, targets="all_linear", density=0.01, scores=None)
def attach_mask(model, cfg, rngs):
  if cfg.by not in MASK_BY:
    raise ValueError(f"mask by={cfg.by!r} is unknown; choose from {MASK_BY}")
  if cfg.by == "regex":
    if not cfg.params:
      raise ValueError("mask by='regex' needs params=<regex over parameter paths, e.g. '.*attn.query.kernel'>")
    pattern = re.compile(cfg.params)
    hits = [path_str(p) for p, v in nnx.iter_graph(model)
            if type(v) is nnx.Param and pattern.fullmatch(path_str(p))]
    if not hits:
      names = [path_str(p) for p, v in nnx.iter_graph(model) if isinstance(v, nnx.Param)]
      raise ValueError(f"mask params {cfg.params!r} match no parameter; parameters: {names[:40]} ...")
    for path in hits:
      owner, _, leaf = path.rpartition(".")
      make_trainable(get_module(model, owner), [leaf])
    return
  if model.cfg.scan_layers:
    raise ValueError(f"mask by={cfg.by!r} needs a model built with scan_layers=False: its entries are chosen across "
                     "layers, a different number per layer, which one stacked [L, ...] delta per kernel cannot "
                     "hold; set model.overrides.scan_layers=False (mask by='regex' works on scanned models)")
  if not 0.0 < cfg.density <= 1.0:
    raise ValueError(f"mask density must be in (0, 1], got {cfg.density}")
  found = find_targets(model, cfg.targets, (Dense,), what="mask")
  if cfg.by == "magnitude":
    scores = {p: jnp.abs(m.kernel[...]) for p, m in found.items()}
  else:
    if cfg.scores is None:
      raise ValueError("mask by='grad' needs scores=grad_scores(model, loss_fn, batches, targets)")
    scores = dict(cfg.scores)
    missing = set(found) - set(scores)
    if missing:
      raise ValueError(f"scores lack the targeted modules {sorted(missing)[:5]}")
  order = list(found)
  flat = jnp.concatenate([jnp.ravel(scores[p]) for p in order])
  k = max(1, int(round(cfg.density * flat.size)))
  top = jnp.argsort(-flat)[:k]
  offsets = jnp.cumsum(jnp.asarray([0] + [found[p].kernel.size for p in order]))
  for i, p in enumerate(order):
    idx = top[(top >= offsets[i]) & (top < offsets[i + 1])] - offsets[i]
    if idx.size:
      replace_module(model, p, SparseDense(found[p], jnp.sort(idx)))
