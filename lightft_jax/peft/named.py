"""Several named adapters on one model, chosen per call or per example.

A wrapper module that can hold several adapters (LoRA, bottleneck adapters) keeps them in an `nnx.Dict`
keyed by adapter name and inherits `Named`. Which adapters act on a call:

  ctx["adapter_ids"]  int32 [B]: per example, an index into `adapter_names(model)` (-1: none);
  ctx["adapter"]      str: one adapter for the whole call (None: none);
  neither             the active adapters (`set_active(model, names)`; default: the model's first adapter name).

Adapter names are one namespace across methods: `ctx["adapter"] = "sst2"` selects the LoRA *and* the
bottleneck adapters named "sst2".

Per-example choice (`adapter_ids`) has two implementations. `selection` gives every adapter a 0/1 weight per
example, so a wrapper computes each of its N adapters on the whole batch and masks (cost grows with N).
`example_ids` + `local_ids` let a wrapper instead gather each example's own weights from its adapters stacked
[N, ...] (S-LoRA / Punica style), so the cost is one adapter's whatever N is; LoRA on Dense does this.
"""

from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from lightft_jax.models.layers import Ctx


class Named(nnx.Module):
  """Mixin state: `names` (own adapters, in order), `ids` (their global indices), `known`, `active`."""

  names: tuple[str, ...] = ()
  ids: tuple[int, ...] = ()
  known: tuple[str, ...] = ()
  active: tuple[str, ...] = ()

  def add_name(self, name: str, global_id: int):
    if name in self.names:
      raise ValueError(f"adapter {name!r} is already attached to this module; choose another `name`")
    self.names, self.ids = self.names + (name,), self.ids + (global_id,)
    if global_id == 0:  # the model's first adapter acts by default, like HF peft's "default"
      self.active = (name,)

  def selection(self, ctx: Ctx, batch_size: int) -> list[tuple[str, jax.Array | None]]:
    """[(name, weight)] for the adapters acting on this call; weight None (all examples) or float [B]."""
    ctx = ctx or {}
    ids = self.example_ids(ctx, batch_size)
    if ids is not None:
      return [(n, (ids == i).astype(jnp.float32)) for n, i in zip(self.names, self.ids)]
    if "adapter" in ctx:
      name = ctx["adapter"]
      if name is None:
        return []
      if name not in self.known and name not in self.names:
        raise ValueError(f"unknown adapter {name!r} in ctx['adapter']; attached adapters: {list(self.known)}")
      return [(name, None)] if name in self.names else []
    return [(n, None) for n in self.active]

  def example_ids(self, ctx: Ctx, batch_size: int) -> jax.Array | None:
    """ctx["adapter_ids"] as int32 [B] (global adapter indices, -1: none), or None if the call has none."""
    ids = (ctx or {}).get("adapter_ids")
    if ids is None:
      return None
    ids = jnp.asarray(ids)
    if ids.shape != (batch_size,):
      raise ValueError(f"ctx['adapter_ids'] must have shape [batch]=({batch_size},), got {ids.shape}")
    return ids.astype(jnp.int32)

  def local_ids(self, ids: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Global adapter ids [B] -> (position in `self.names` int32 [B], 0 where absent; present bool [B]).

    An example is absent here when its id is -1 or names an adapter that this module does not hold."""
    hit = ids[:, None] == jnp.asarray(self.ids, jnp.int32)[None, :]  # [B, N]
    return jnp.argmax(hit, axis=-1).astype(jnp.int32), hit.any(axis=-1)


def weigh(y: jax.Array, w: jax.Array | None) -> jax.Array:
  """Scales y [B,...] per example by w [B] (None: unchanged)."""
  return y if w is None else y * w.reshape(w.shape + (1,) * (y.ndim - 1)).astype(y.dtype)


def adapter_names(model: nnx.Module) -> tuple[str, ...]:
  """Every adapter name attached to `model`, in the order that `ctx["adapter_ids"]` indexes."""
  return tuple(getattr(model, "peft_adapter_names", ()))


def register_name(model: nnx.Module, name: str) -> int:
  """Global index of adapter `name` on `model`, adding it if new."""
  names = adapter_names(model)
  if name not in names:
    model.peft_adapter_names = names + (name,)
  return adapter_names(model).index(name)


def sync_names(model: nnx.Module) -> None:
  """Tells every named-adapter wrapper which names exist (to reject typos in ctx["adapter"])."""
  names = adapter_names(model)
  for _, m in nnx.iter_modules(model):
    if isinstance(m, Named):
      m.known = names


def set_active(model: nnx.Module, names: str | Sequence[str]) -> None:
  """Chooses the adapters that act when a call names none (all wrappers that hold them)."""
  names = (names,) if isinstance(names, str) else tuple(names)
  unknown = set(names) - set(adapter_names(model))
  if unknown:
    raise ValueError(f"unknown adapter(s) {sorted(unknown)}; attached adapters: {list(adapter_names(model))}")
  for _, m in nnx.iter_modules(model):
    if isinstance(m, Named):
      m.active = tuple(n for n in names if n in m.names)
