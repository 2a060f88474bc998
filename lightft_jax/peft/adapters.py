"""Bottleneck adapters: Houlsby (after attention and FFN) and Pfeiffer (after FFN), sequential or parallel.

adapter(h) = scale * act(h @ down + down_bias) @ up + up_bias with down [D, m], up [m, D], m =
D // reduction_factor; `up` starts at zero, so a fresh adapter is the identity.
Sequential: sublayer output y -> y + adapter(y) (Houlsby et al. 2019); parallel: y + adapter(x) with x the
sublayer input (He et al. 2022). The wrapped sublayers are `{...}.layers.{i}.attn` (Attention) and
`{...}.layers.{i}.mlp` (MLP); several named adapters may sit on one sublayer (see named.py).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from lightft_jax.models.layers import MLP, Attention, Ctx, activation
from lightft_jax.models.ops import linear
from lightft_jax.peft import named
from lightft_jax.peft import core
from lightft_jax.peft.core import PeftParam, find_targets, register, replace_module


class AdapterParam(PeftParam):
  """Bottleneck adapter weights."""


def adapter_fn(h: jax.Array, down: jax.Array, down_bias: jax.Array, up: jax.Array, up_bias: jax.Array,
               act, scale: float = 1.0) -> jax.Array:
  """scale * (act(h @ down + down_bias) @ up + up_bias). h [..., D], down [D, m], up [m, D] -> [..., D]."""
  z = act(linear(h, down.astype(h.dtype)) + down_bias.astype(h.dtype))
  return scale * (linear(z, up.astype(h.dtype)) + up_bias.astype(h.dtype))


class AdapterUnit(nnx.Module):
  """One named adapter: `adapter_down`, `adapter_down_bias`, `adapter_up`, `adapter_up_bias`."""

  def __init__(self, d: int, m: int, *, act: str, scale: float, init_std: float, dtype, rngs: nnx.Rngs):
    self.adapter_down = AdapterParam(init_std * jax.random.normal(rngs.params(), (d, m), dtype),
                                     sharding_names=("embed", None))
    self.adapter_down_bias = AdapterParam(jnp.zeros((m,), dtype), sharding_names=(None,))
    self.adapter_up = AdapterParam(jnp.zeros((m, d), dtype), sharding_names=(None, "embed"))
    self.adapter_up_bias = AdapterParam(jnp.zeros((d,), dtype), sharding_names=("embed",))
    self.act_name, self.scale = act, scale

  def __call__(self, h: jax.Array) -> jax.Array:
    return adapter_fn(h, self.adapter_down[...], self.adapter_down_bias[...], self.adapter_up[...],
                      self.adapter_up_bias[...], activation(self.act_name), self.scale)


class _AdapterWrapper(named.Named):
  """Shared state of the sublayer wrappers: the wrapped `base`, named `adapter` units, `placement`."""

  def __init__(self, base: nnx.Module, placement: str):
    self.base, self.placement = base, placement
    self.adapter = nnx.Dict()

  def add(self, name: str, global_id: int, unit: AdapterUnit):
    self.add_name(name, global_id)
    self.adapter[name] = unit

  def adapt(self, x: jax.Array, y: jax.Array, ctx: Ctx) -> jax.Array:
    h = x if self.placement == "parallel" else y
    for name, w in self.selection(ctx, y.shape[0]):
      y = y + named.weigh(self.adapter[name](h), w)
    return y


class AdapterMLP(_AdapterWrapper):
  """MLP + adapters; call `(x, ctx=None)` like MLP."""

  def __call__(self, x: jax.Array, ctx: Ctx = None) -> jax.Array:
    return self.adapt(x, self.base(x, ctx), ctx)


class AdapterAttention(_AdapterWrapper):
  """Attention + adapters on its output; same call as Attention, returns (y, cache)."""

  def __call__(self, x: jax.Array, ctx: Ctx = None, **kw):
    y, cache = self.base(x, ctx=ctx, **kw)
    return self.adapt(x, y, ctx), cache


CONFIGS = {"houlsby": ("attn", "mlp"), "pfeiffer": ("mlp",)}
PLACEMENTS = ("sequential", "parallel")


@register("adapter", config="houlsby", placement="sequential", reduction_factor=16, scale=1.0,
          activation="relu", init_std=1e-3, targets=None)
def attach(model: nnx.Module, cfg, rngs: nnx.Rngs) -> None:
  """Adapters after the sublayers `config` names (or the Attention/MLP modules `targets` matches)."""
  if cfg.config not in CONFIGS:
    raise ValueError(f"unknown adapter config {cfg.config!r}; choose from {sorted(CONFIGS)}")
  if cfg.placement not in PLACEMENTS:
    raise ValueError(f"unknown adapter placement {cfg.placement!r}; choose from {PLACEMENTS}")
  if not isinstance(cfg.reduction_factor, (int, float)) or cfg.reduction_factor <= 0:
    raise ValueError(f"adapter reduction_factor must be > 0, got {cfg.reduction_factor!r}")
  if cfg.activation not in ("gelu", "gelu_tanh", "relu", "silu"):
    raise ValueError(f"unknown adapter activation {cfg.activation!r}; choose gelu, gelu_tanh, relu or silu")
  d = model.cfg.d_model
  m = max(1, int(d // cfg.reduction_factor))
  targets = cfg.targets or r".*layers\.\d+\.(" + "|".join(CONFIGS[cfg.config]) + ")$"
  name = cfg.get("name") or "default"
  gid = named.register_name(model, name)
  found = find_targets(model, targets, (MLP, Attention, AdapterMLP, AdapterAttention), what="adapter")
  dtype = model.cfg.params_dtype
  scanned = core.scanned_stacks(model)
  for path, module in found.items():
    if isinstance(module, MLP):
      module = AdapterMLP(module, cfg.placement)
      replace_module(model, path, module)
    elif isinstance(module, Attention):
      module = AdapterAttention(module, cfg.placement)
      replace_module(model, path, module)
    elif module.placement != cfg.placement:
      raise ValueError(f"{path} already has {module.placement} adapters; one placement per sublayer")
    unit = lambda rngs: AdapterUnit(d, m, act=cfg.activation, scale=cfg.scale, init_std=cfg.init_std, dtype=dtype,
                                    rngs=rngs)
    module.add(name, gid, core.per_layer(core.layer_count(model, path, scanned), unit, rngs=rngs))  # [L, ...] if scanned
  named.sync_names(model)
