"""(IA)^3 (Liu et al. 2022): learned vectors that rescale keys, values and the FFN intermediate.

On attention projections the vector scales the output, y = base(x) * l (l [out], bias included, as HF
peft does); on feed-forward modules (the FFN down projection by default) it scales the input,
y = base(x * l) (l [in]). Vectors start at ones, so a fresh model computes exactly what it did before.

HF peft interop (peft_type IA3, registered with `hf_io.register_hf` at the end of this module): HF's ia3_l is
[out, 1], or [1, in] on its `feedforward_modules`; module names and `fan_in_fan_out` come from the architecture.
"""

from __future__ import annotations

import re

import jax
import jax.numpy as jnp
from flax import nnx

from lightft_jax.models.layers import Ctx, Dense
from lightft_jax.peft import core, hf_io
from lightft_jax.peft.core import PeftParam, find_targets, register, replace_module, target_regex


class IA3Param(PeftParam):
  """(IA)^3 scaling vectors."""


def ia3_scale(x: jax.Array, l: jax.Array) -> jax.Array:
  """x [..., d] * l [d]."""
  return x * l.astype(x.dtype)


class IA3Dense(nnx.Module):
  """Dense with an (IA)^3 vector `ia3` on its output (`feedforward=False`) or input (`True`)."""

  def __init__(self, base: Dense, feedforward: bool):
    self.base, self.feedforward = base, feedforward
    d = base.d_in if feedforward else base.d_out
    axes = core.axis_names(base.kernel) or (None, None)
    self.ia3 = IA3Param(jnp.ones((d,), base.kernel[...].dtype), sharding_names=(axes[0 if feedforward else 1],))

  def __call__(self, x: jax.Array, ctx: Ctx = None) -> jax.Array:
    if self.feedforward:
      return self.base(ia3_scale(x, self.ia3[...]), ctx)
    return ia3_scale(self.base(x, ctx), self.ia3[...])


@register("ia3", targets="kv", feedforward=r".*mlp\.down$")
def attach(model: nnx.Module, cfg, rngs: nnx.Rngs) -> None:
  """(IA)^3 on `targets` (output side) and `feedforward` (input side); either may be None or empty."""
  groups = [t for t in (cfg.targets, cfg.feedforward) if t]
  if not groups:
    raise ValueError("ia3 needs `targets` and/or `feedforward` (regex, preset or list of module names)")
  found = {}
  for targets in groups:
    found.update(find_targets(model, targets, (Dense,), what="IA3"))
  ff = re.compile(target_regex(cfg.feedforward)) if cfg.feedforward else None
  scanned = core.scanned_stacks(model)
  for path, module in found.items():
    feedforward = bool(ff and any(ff.fullmatch(p) for p in core.layer_paths(path, scanned)))
    # on a scanned stack the vector is built per layer: stacked [L, d] like the kernel
    new = core.per_layer(core.layer_count(model, path, scanned), lambda base: IA3Dense(base, feedforward), module)
    replace_module(model, path, new)


# ---------------------------------------------------------------------------------------------- HF peft

def _save_hf(model, names, adapter, tensors) -> dict:
  targets, ff = [], []
  scanned = core.scanned_stacks(model)
  for p, m in nnx.iter_modules(model):
    if not isinstance(m, IA3Dense):
      continue
    for ours, i in hf_io.layers_of(core.path_str(p), scanned):  # a scanned module: one HF module per layer
      theirs = names[core.unwrapped_path(ours)]
      v = hf_io.to_np(hf_io.take(m.ia3[...], i))
      tensors[f"{hf_io.MODEL_PREFIX}{theirs}.ia3_l"] = v[None, :] if m.feedforward else v[:, None]
      targets.append(theirs)
      if m.feedforward:
        ff.append(theirs)
  return {"target_modules": sorted(targets), "feedforward_modules": sorted(ff),
          "fan_in_fan_out": hf_io.fan_in_fan_out(model), "init_ia3_weights": True}


def _is_ff(module: str, cfg) -> bool:
  ff = cfg.get("feedforward_modules") or []
  ff = [ff] if isinstance(ff, str) else ff
  return any(module == f or module.endswith("." + f) for f in ff)


def _load_hf(model, cfg, tensors, adapter):
  mods, rest = hf_io.module_tensors(tensors, ("ia3_l",))
  ours = hf_io.our_paths(model, mods)
  ff = [ours[h] for h in mods if _is_ff(h, cfg)]
  normal = [p for p in ours.values() if p not in ff]
  core.apply(model, {"method": "ia3", "targets": hf_io.exact_targets(normal) if normal else None,
                     "feedforward": hf_io.exact_targets(ff) if ff else None, "train_head": False})
  scanned = core.scanned_stacks(model)
  for theirs, t in mods.items():
    path, i = core.locate(model, ours[theirs], scanned)
    hf_io.assign(core.get_module(model, path).ia3, t["ia3_l"].reshape(-1), f"{theirs}.ia3_l", i)
  return rest


def _attached(model) -> bool:
  return any(isinstance(m, IA3Dense) for _, m in nnx.iter_modules(model))


hf_io.register_hf(hf_io.HFMethod("IA3", _attached, _save_hf, _load_hf))
