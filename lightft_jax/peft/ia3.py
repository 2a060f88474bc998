"""(IA)^3 (Liu et al. 2022): learned vectors that rescale keys, values and the FFN intermediate.

On attention projections the vector scales the output, y = base(x) * l (l [out], bias included, as HF
peft does); on feed-forward modules (the FFN down projection by default) it scales the input,
y = base(x * l) (l [in]). Vectors start at ones, so a fresh model computes exactly what it did before.
"""

from __future__ import annotations

import re

import jax
import jax.numpy as jnp
from flax import nnx

from lightft_jax.models.layers import Ctx, Dense
from lightft_jax.peft.core import PeftParam, check_unscanned, find_targets, register, replace_module, target_regex


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
    axes = base.kernel.get_metadata().get("sharding_names", (None, None))
    self.ia3 = IA3Param(jnp.ones((d,), base.kernel[...].dtype), sharding_names=(axes[0 if feedforward else 1],))

  def __call__(self, x: jax.Array, ctx: Ctx = None) -> jax.Array:
    if self.feedforward:
      return self.base(ia3_scale(x, self.ia3[...]), ctx)
    return ia3_scale(self.base(x, ctx), self.ia3[...])


@register("ia3", targets="kv", feedforward=r".*mlp\.down$")
def attach(model: nnx.Module, cfg, rngs: nnx.Rngs) -> None:
  """(IA)^3 on `targets` (output side) and `feedforward` (input side); either may be None or empty."""
  check_unscanned(model, "ia3")
  groups = [t for t in (cfg.targets, cfg.feedforward) if t]
  if not groups:
    raise ValueError("ia3 needs `targets` and/or `feedforward` (regex, preset or list of module names)")
  found = {}
  for targets in groups:
    found.update(find_targets(model, targets, (Dense,), what="IA3"))
  ff = re.compile(target_regex(cfg.feedforward)) if cfg.feedforward else None
  for path, module in found.items():
    replace_module(model, path, IA3Dense(module, feedforward=bool(ff and ff.fullmatch(path))))
