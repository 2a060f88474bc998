"""Weighted combinations of named LoRA adapters (HF peft's `LoraModel.add_weighted_adapter`).

`add_weighted_adapter(model, adapters, weights, name, combination_type, ...)` adds a new LoRA `name` to every
LoRA wrapper that holds at least one of `adapters`; `combine(...)` is the same arithmetic on plain arrays.
The semantics follow HF peft 0.21 (`peft/tuners/lora/model.py`, `peft/utils/merge_utils.py`):

  linear, ties, dare_linear, dare_ties, magnitude_prune
      need equal ranks r; A and B are merged separately, each with weight sqrt(|w_i * scale_i|) (the sign of
      w_i * scale_i goes on A only), so even `linear` is not sum_i w_i s_i A_i B_i: the product has cross terms
      A_i B_j (peft calls it a rough approximation). The other four prune / elect signs on the factors.
  cat
      rank sum(r_i): A = [w_1 s_1 A_1 | w_2 s_2 A_2 | ...], B = [B_1; B_2; ...]; delta = sum_i w_i s_i A_i B_i.
  svd, ties_svd, dare_linear_svd, dare_ties_svd, magnitude_prune_svd
      merge the deltas s_i A_i B_i (task arithmetic / TIES / DARE / magnitude pruning), then truncate the SVD to
      rank `svd_rank` (default: the largest r_i), singular values on B; `svd_clamp` clamps both factors to the
      symmetric `svd_clamp` quantile of their entries. That quantile depends on the SVD's arbitrary signs (peft's
      own result changes with the torch backend); ours fixes them (`canonical_svd`).

TIES / magnitude pruning keep the top `density` fraction of entries by magnitude; TIES then elects a sign per
entry (`majority_sign_method` "total": sign of the sum, "frequency": the more common sign) and averages the
weighted entries that agree with it. DARE keeps each entry with probability `density` and rescales by 1/density
(peft draws the mask with torch.bernoulli; here it comes from `seed`, so only its distribution matches).
`density >= 1` prunes nothing.

Like peft: with one adapter the type falls back to `linear`; the new adapter has r = alpha = its rank and copies
rsLoRA / DoRA / dropout from `adapters[0]`, so its scale is 1 (rsLoRA: sqrt(rank), which multiplies the merged
delta by sqrt(rank) exactly as peft does); a DoRA result gets fresh magnitudes (column norms of the base
weight) and the inputs' DoRA magnitudes are ignored. Unlike peft, an existing `name` is an error (peft returns
silently). Layouts are ours: A [in, r], B [r, out] (HF's lora_A.T / lora_B.T), delta = scale * A @ B.
"""

from __future__ import annotations

import math
from typing import Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from lightft_jax.peft import core, hf_io, named
from lightft_jax.peft.lora import LoraEmbedding, lora_modules

FACTOR_TYPES = ("linear", "ties", "dare_linear", "dare_ties", "magnitude_prune")
SVD_TYPES = ("svd", "ties_svd", "dare_linear_svd", "dare_ties_svd", "magnitude_prune_svd")
COMBINATION_TYPES = FACTOR_TYPES + ("cat",) + SVD_TYPES
_PRUNED = ("ties", "dare_linear", "dare_ties", "magnitude_prune")


# ---------------------------------------------------------------------------------------------- merge_utils

def _prune(t: jax.Array, density: float, method: str, key) -> jax.Array:
  if density >= 1:
    return t
  if method == "magnitude":  # top int(density * size) entries by |t|
    k = int(density * t.size)
    flat = jnp.abs(t).reshape(-1)
    mask = jnp.zeros_like(flat)
    if k > 0:
      mask = mask.at[jax.lax.top_k(flat, k)[1]].set(1)
    return t * mask.reshape(t.shape)
  keep = jax.random.bernoulli(key, density, t.shape)  # DARE: random drop, rescaled
  return jnp.where(keep, t, 0) / density


def merge_tensors(tensors: Sequence[jax.Array], weights: Sequence[float], method: str = "linear",
                  density: float | None = None, majority_sign_method: str = "total", key=None) -> jax.Array:
  """peft's merge_utils on same-shape tensors: method linear (task arithmetic), ties, dare_linear, dare_ties or
  magnitude_prune. `key` (jax PRNG key) drives DARE's random masks."""
  w = jnp.asarray(weights, jnp.float32)
  if method != "linear":
    kind = "random" if method.startswith("dare") else "magnitude"
    keys = jax.random.split(key if key is not None else jax.random.key(0), len(tensors))
    tensors = [_prune(t, density, kind, k) for t, k in zip(tensors, keys)]
  t = jnp.stack([jnp.asarray(x, jnp.float32) for x in tensors])
  weighted = t * w.reshape((-1,) + (1,) * (t.ndim - 1))
  if method not in ("ties", "dare_ties"):
    return weighted.sum(0)
  sign = jnp.sign(t)
  votes = t.sum(0) if majority_sign_method == "total" else sign.sum(0)
  agree = sign == jnp.where(votes >= 0, 1.0, -1.0)
  return (weighted * agree).sum(0) / jnp.maximum(agree.sum(0), 1.0)


# ---------------------------------------------------------------------------------------------- factors

def _pad_rank(a: jax.Array, b: jax.Array, rank: int) -> tuple[jax.Array, jax.Array]:
  r = a.shape[1]
  if r > rank:
    raise ValueError(f"the merged factors have rank {r} > the requested rank {rank}")
  if r < rank:
    a, b = jnp.pad(a, ((0, 0), (0, rank - r))), jnp.pad(b, ((0, rank - r), (0, 0)))
  return a, b


def canonical_svd(x: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
  """Reduced SVD with a fixed sign per singular pair: the largest-magnitude entry of each column of U is > 0.

  SVD signs are arbitrary (LAPACK, torch and jax differ), which is harmless for U S Vh but not for `svd_clamp`:
  its quantile is taken over the signed entries. With these signs the result does not depend on the backend."""
  u, s, vh = jnp.linalg.svd(x, full_matrices=False)
  flip = jnp.sign(jnp.take_along_axis(u, jnp.argmax(jnp.abs(u), axis=0)[None], axis=0))
  flip = jnp.where(flip == 0, 1.0, flip)
  return u * flip, s, vh * flip.reshape(-1, 1)


def combine(a: Sequence[jax.Array], b: Sequence[jax.Array], scales: Sequence[float], weights: Sequence[float],
            combination_type: str = "svd", *, rank: int | None = None, density: float | None = None,
            majority_sign_method: str = "total", svd_clamp: float | None = None, key=None
            ) -> tuple[jax.Array, jax.Array]:
  """Merges LoRA factors a[i] [in, r_i], b[i] [r_i, out] with scales[i] (alpha/r) and weights[i] into (A, B),
  A [in, rank], B [rank, out], such that A @ B is the merged delta (module docstring). `rank`: the output rank
  (default: r for the factor-wise types, sum(r_i) for cat, max(r_i) for the svd types); smaller results are
  zero-padded to it. `key`: jax PRNG key for DARE."""
  _check(combination_type, density, majority_sign_method)
  if not (len(a) == len(b) == len(scales) == len(weights)) or not a:
    raise ValueError(f"need as many (>0) factors, scales and weights; got {len(a)}, {len(b)}, {len(scales)}, "
                     f"{len(weights)}")
  ranks = [x.shape[1] for x in a]
  key = key if key is not None else jax.random.key(0)
  if combination_type == "cat":
    out = (jnp.concatenate([x * (w * s) for x, w, s in zip(a, weights, scales)], axis=1),
           jnp.concatenate(list(b), axis=0))
    return _pad_rank(*out, rank or sum(ranks))
  if combination_type in FACTOR_TYPES:
    if len(set(ranks)) != 1:
      raise ValueError(f"combination_type {combination_type!r} needs adapters of equal rank, got ranks {ranks}; "
                       "use 'cat' or an svd type")
    ws = [w * s for w, s in zip(weights, scales)]
    wa = [math.sqrt(abs(x)) * (1.0 if x >= 0 else -1.0) for x in ws]
    wb = [math.sqrt(abs(x)) for x in ws]
    ka, kb = jax.random.split(key)
    out = (merge_tensors(a, wa, combination_type, density, majority_sign_method, ka),
           merge_tensors(b, wb, combination_type, density, majority_sign_method, kb))
    return _pad_rank(*out, rank or ranks[0])
  rank = rank or max(ranks)
  method = "linear" if combination_type == "svd" else combination_type[: -len("_svd")]
  deltas = [s * jnp.dot(x.astype(jnp.float32), y.astype(jnp.float32)) for x, y, s in zip(a, b, scales)]
  delta = merge_tensors(deltas, weights, method, density, majority_sign_method, key)
  u, sv, vh = canonical_svd(delta.T)  # peft's [out, in] orientation
  bt, at = u[:, :rank] * sv[:rank], vh[:rank]
  if svd_clamp is not None:
    hi = jnp.quantile(jnp.concatenate([bt.reshape(-1), at.reshape(-1)]), svd_clamp)
    bt, at = jnp.clip(bt, -hi, hi), jnp.clip(at, -hi, hi)
  return _pad_rank(at.T, bt.T, rank)


def _check(combination_type, density, majority_sign_method):
  if combination_type not in COMBINATION_TYPES:
    raise ValueError(f"unknown combination_type {combination_type!r}; choose one of {COMBINATION_TYPES}")
  if combination_type.removesuffix("_svd") in _PRUNED and (density is None or density < 0):
    raise ValueError(f"combination_type {combination_type!r} needs a density >= 0 (fraction of entries kept), "
                     f"got {density!r}")
  if majority_sign_method not in ("total", "frequency"):
    raise ValueError(f"majority_sign_method must be 'total' or 'frequency', got {majority_sign_method!r}")


# ---------------------------------------------------------------------------------------------- model

def add_weighted_adapter(model: nnx.Module, adapters: Sequence[str], weights: Sequence[float], name: str,
                         combination_type: str = "svd", *, svd_rank: int | None = None,
                         svd_clamp: float | None = None, density: float | None = None,
                         majority_sign_method: str = "total", seed: int = 0) -> nnx.Module:
  """Adds LoRA `name`, the `combination_type` merge of the named LoRAs `adapters` with `weights`, on every
  module that holds any of them (in place; returns model). It does not become active: select it with
  `set_active(model, name)` or ctx["adapter"]. `seed` drives DARE's random masks."""
  adapters, weights = list(adapters), [float(w) for w in weights]
  if not adapters or len(adapters) != len(weights):
    raise ValueError(f"need one weight per adapter, got {len(adapters)} adapters and {len(weights)} weights")
  if name in named.adapter_names(model):
    raise ValueError(f"adapter {name!r} already exists; choose a new name")
  combination_type = "linear" if len(adapters) == 1 else combination_type
  _check(combination_type, density, majority_sign_method)
  wrappers = {p: m for p, m in lora_modules(model).items() if any(n in m.names for n in adapters)}
  units = {n: [m.lora[n] for m in wrappers.values() if n in m.names] for n in adapters}
  missing = [n for n, us in units.items() if not us]
  if missing:
    raise ValueError(f"no LoRA named {missing}; LoRA adapters here: "
                     f"{sorted({n for m in lora_modules(model).values() for n in m.names})}")
  ranks = [max(u.r for u in units[n]) for n in adapters]
  if combination_type in FACTOR_TYPES:
    if len(set(ranks)) != 1:
      raise ValueError(f"combination_type {combination_type!r} needs adapters of equal rank, got "
                       f"{dict(zip(adapters, ranks))}; use 'cat' or an svd type")
    rank = ranks[0]
  else:
    rank = sum(ranks) if combination_type == "cat" else (svd_rank or max(ranks))
  if not isinstance(rank, int) or rank <= 0:
    raise ValueError(f"svd_rank must be a positive integer, got {svd_rank!r}")
  first = units[adapters[0]][0]
  dora = first.lora_magnitude is not None
  if dora and any(isinstance(m, LoraEmbedding) for m in wrappers.values()):
    raise ValueError(f"{adapters[0]!r} is DoRA, so the merge would be too, and DoRA is not defined for embeddings")
  key = jax.random.key(seed)
  scanned = core.scanned_stacks(model)
  # One key per module and layer, numbered in the unrolled model's module order, so that a scanned model (one
  # wrapper holding L layers' factors) draws DARE's masks exactly as the unrolled one does.
  sites = sorted(((q, path, i) for path in wrappers for q, i in hf_io.layers_of(path, scanned)),
                 key=lambda t: tuple((0, int(x), "") if x.isdigit() else (1, 0, x) for x in t[0].split(".")))
  factors: dict[str, list] = {path: [] for path in wrappers}  # all computed before the model changes
  for k, (_, path, i) in enumerate(sites):
    m = wrappers[path]
    here = [(m.lora[n], w) for n, w in zip(adapters, weights) if n in m.names]
    factors[path].append((i, combine(
        [hf_io.take(u.lora_a[...], i) for u, _ in here], [hf_io.take(u.lora_b[...], i) for u, _ in here],
        [u.scale for u, _ in here], [w for _, w in here], combination_type, rank=rank, density=density,
        majority_sign_method=majority_sign_method, svd_clamp=svd_clamp, key=jax.random.fold_in(key, k))))
  for path, per_layer in factors.items():  # a scanned module's layers stacked [L, ...] in layer order
    per_layer.sort(key=lambda t: -1 if t[0] is None else t[0])
    ab = [f for _, f in per_layer]
    factors[path] = ab[0] if per_layer[0][0] is None else (jnp.stack([a for a, _ in ab]), jnp.stack([b for _, b in ab]))
  gid = named.register_name(model, name)
  dropout = float(first.dropout.rate) if first.dropout is not None else 0.0
  for path, m in wrappers.items():
    m.add(name, gid, r=rank, alpha=float(rank), rslora=first.rslora, dora=dora, dropout=dropout, init="kaiming",
          rngs=nnx.Rngs(seed))
    u, (a, b) = m.lora[name], factors[path]
    u.lora_a[...], u.lora_b[...] = a.astype(u.lora_a[...].dtype), b.astype(u.lora_b[...].dtype)
  named.sync_names(model)
  return model
