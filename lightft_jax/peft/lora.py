"""LoRA (Hu et al. 2021), rsLoRA and DoRA on Dense layers (fused projections included) and embeddings.

y = base(x) + scale * dropout(x) @ A @ B with A [in, r] (kaiming-uniform like torch, bound 1/sqrt(in)) and
B [r, out] (zeros), scale = alpha / r (rsLoRA: alpha / sqrt(r)). DoRA (Liu et al. 2024) rescales the
columns of W + scale*A@B to a learned magnitude m [out], initialised to the column norms of W.
Embedding LoRA follows HF peft: A [num, r] zeros, B [r, dim] normal, y = E[ids] + scale * A[ids] @ B.

Several named LoRAs may sit on one module (see named.py); `merge` / `unmerge` fold the active ones into
the base weights and back; `merge_and_unload` drops the wrappers.

Mixed batches (ctx["adapter_ids"], one adapter per example) on a Dense gather each example's factors
(S-LoRA / Punica): the module's N LoRAs are stacked at call time into A [N, in, r] and B [N, r, out] (ranks
padded with zeros to the largest, which adds exact zeros), example e takes A[id_e], B[id_e] and scale[id_e], and
the update is two batched matmuls, so a mixed batch costs what a one-adapter batch does for any N. Gradients reach
each adapter only from its own examples (the gather's transpose is a scatter-add). The per-name units stay as
they are (HF save/load, merge). DoRA adapters, and training-mode dropout with different rates across the
module's adapters, use the masked path (every adapter on every example, weighted 0/1); `set_mixed_batch(model,
"mask")` forces it everywhere, e.g. to compare. Embedding LoRA always uses the masked path.

HF peft interop (peft_type LORA, registered with `hf_io.register_hf` at the end of this module): HF's lora_A
[r, in] / lora_B [out, r] (lora_embedding_A / _B on embeddings) are our a.T / b.T, lora_magnitude_vector is our
magnitude; module names come from the architecture (`hf_io.module_names`), and so does `fan_in_fan_out` (GPT-2's
Conv1D): HF peft keeps A and B in this layout there too, so no model type needs its own case.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from flax import nnx

from lightft_jax.models.extensions import Hoisted
from lightft_jax.models.layers import Ctx, Dense, Embedding
from lightft_jax.models.ops import linear
from lightft_jax.peft import core, hf_io, named
from lightft_jax.peft.core import PeftParam, find_targets, path_str, register, replace_module


class LoraParam(PeftParam):
  """LoRA factors and DoRA magnitudes."""


def lora_delta(x: jax.Array, a: jax.Array, b: jax.Array, scale: float) -> jax.Array:
  """scale * x @ a @ b. x [..., in], a [in, r], b [r, out] -> [..., out]."""
  return linear(linear(x, a.astype(x.dtype)), b.astype(x.dtype)) * scale


def gathered_lora_delta(x: jax.Array, a: jax.Array, b: jax.Array, scale: jax.Array, local: jax.Array) -> jax.Array:
  """Per example e: scale[local_e] * x_e @ a[local_e] @ b[local_e].

  x [B, ..., in]; a [N, in, r], b [N, r, out], scale [N] (the stacked adapters); local int [B] -> [B, ..., out].
  Put scale 0 at an example (a zero row of `scale` after gathering) to give it no update.
  """
  bsz, d_out = x.shape[0], b.shape[-1]
  x3 = x.reshape(bsz, -1, x.shape[-1])  # [B, T, in], T = every axis between batch and features
  a_e, b_e = jnp.take(a, local, axis=0).astype(x.dtype), jnp.take(b, local, axis=0).astype(x.dtype)
  h = jnp.einsum("bti,bir->btr", x3, a_e) * scale.astype(x.dtype)[:, None, None]  # scale on [B,T,r]: cheapest
  return jnp.einsum("btr,bro->bto", h, b_e).reshape(x.shape[:-1] + (d_out,))


def lora_scale(r: int, alpha: float, rslora: bool) -> float:
  return alpha / math.sqrt(r) if rslora else alpha / r


def dora_norm(kernel: jax.Array, a: jax.Array, b: jax.Array, scale: float) -> jax.Array:
  """Column norms [..., out] of the adapted kernel [..., in, out] (treated as a constant, as in the DoRA paper);
  leading axes (a scanned stack's layers) are batch axes."""
  w = kernel.astype(jnp.float32) + scale * jnp.matmul(a.astype(jnp.float32), b.astype(jnp.float32))
  return jax.lax.stop_gradient(jnp.linalg.norm(w, axis=-2))


def dora_output(x: jax.Array, kernel: jax.Array, a: jax.Array, b: jax.Array, magnitude: jax.Array,
                scale: float) -> jax.Array:
  """What DoRA adds to base(x): (m/|W'| - 1) * x@W + m/|W'| * scale * x@A@B. x [..., in] -> [..., out]."""
  ratio = (magnitude.astype(jnp.float32) / dora_norm(kernel, a, b, scale)).astype(x.dtype)
  return (ratio - 1) * linear(x, kernel.astype(x.dtype)) + ratio * lora_delta(x, a, b, scale)


def _kaiming_uniform(key, shape, fan_in, dtype):
  bound = 1.0 / math.sqrt(fan_in)  # torch kaiming_uniform_(a=sqrt(5)) as used by HF peft
  return jax.random.uniform(key, shape, dtype, -bound, bound)


class LoraUnit(nnx.Module):
  """One named LoRA: factors `lora_a`, `lora_b` (+ DoRA `lora_magnitude`), its scale and dropout."""

  def __init__(self, a: jax.Array, b: jax.Array, *, alpha: float, rslora: bool, dropout: float, rngs: nnx.Rngs,
               axes: tuple, magnitude: jax.Array | None = None):
    self.lora_a = LoraParam(a, sharding_names=(axes[0], None))
    self.lora_b = LoraParam(b, sharding_names=(None, axes[1]))
    self.lora_magnitude = None if magnitude is None else LoraParam(magnitude, sharding_names=(axes[1],))
    self.r, self.alpha, self.rslora = a.shape[1], alpha, rslora
    self.scale = lora_scale(self.r, alpha, rslora)
    self.dropout = nnx.Dropout(dropout, rngs=rngs) if dropout else None
    self.merged_norm = nnx.data(None)  # DoRA column norms at merge time, to unmerge exactly

  def drop(self, x):
    return x if self.dropout is None else self.dropout(x)


class LoraDense(named.Named):
  """Dense + named LoRAs; call signature `(x, ctx=None)` like Dense. Base weights stay in `base`.

  `mixed_batch` ("gather" | "mask") says how a call with ctx["adapter_ids"] is computed (module docstring).
  `n_layers`: L when the Dense belongs to a scanned stack; its LoRA factors are then stacked [L, ...] like the
  kernel (built per layer by `core.per_layer`), and `merge` / `unmerge` work on all layers at once."""

  mixed_batch: str = "gather"

  def __init__(self, base: Dense, n_layers: int | None = None):
    self.base = base
    self.lora = nnx.Dict()
    self.merged: tuple[str, ...] = ()
    self.n_layers = n_layers
    self.hoisted = nnx.data(None)  # (A, B) stacked by `hoist`, inside one jitted call only

  def add(self, name: str, global_id: int, *, r: int, alpha: float, rslora: bool, dora: bool, dropout: float,
          init: str, rngs: nnx.Rngs):
    if init not in ("kaiming", "gaussian"):
      raise ValueError(f"unknown LoRA init {init!r}; choose 'kaiming' or 'gaussian'")

    def unit(base: Dense, rngs: nnx.Rngs) -> LoraUnit:  # one layer's LoRA
      kernel = base.kernel
      d_in, d_out = kernel.shape
      dt = kernel[...].dtype
      if init == "kaiming":
        a = _kaiming_uniform(rngs.params(), (d_in, r), d_in, dt)
      else:
        a = jax.random.normal(rngs.params(), (d_in, r), dt) / r
      b = jnp.zeros((r, d_out), dt)
      axes = core.axis_names(kernel) or (None, None)
      mag = jnp.linalg.norm(kernel[...].astype(jnp.float32), axis=0).astype(dt) if dora else None
      return LoraUnit(a, b, alpha=alpha, rslora=rslora, dropout=dropout, rngs=rngs, axes=axes, magnitude=mag)

    new = core.per_layer(self.n_layers, unit, self.base, rngs=rngs)
    self.add_name(name, global_id)
    self.lora[name] = new

  def _gatherable(self) -> bool:
    """Whether a mixed batch may take the gathered path (else: masked, every adapter on every example)."""
    if self.mixed_batch != "gather":
      return False
    units = [self.lora[n] for n in self.names]
    if any(u.lora_magnitude is not None for u in units):
      return False  # DoRA rescales the whole adapted kernel per adapter; kept on the masked path
    live = {u.dropout.rate for u in units if u.dropout is not None and not u.dropout.deterministic}
    rates = {u.dropout.rate if u.dropout is not None else 0.0 for u in units}
    # One dropout mask serves the batch when every adapter drops at the same rate (each example sees only its
    # own adapter, so that is the masked path's distribution); different live rates stay masked.
    return not live or len(rates) == 1

  def _stacked(self) -> tuple[jax.Array, jax.Array]:
    """The named adapters' factors stacked: A [N, in, r], B [N, r, out] (ranks zero-padded to the largest; a
    scanned stack's [L, N, ...] when called outside the scan, layers first, so the scan hands each layer its
    [N, ...])."""
    units = [self.lora[n] for n in self.names]
    r, axis = max(u.r for u in units), units[0].lora_a.ndim - 2  # 1 on a scanned stack outside its scan
    lead = ((0, 0),) * axis
    a = jnp.stack([jnp.pad(u.lora_a[...], lead + ((0, 0), (0, r - u.r))) for u in units], axis)
    b = jnp.stack([jnp.pad(u.lora_b[...], lead + ((0, r - u.r), (0, 0))) for u in units], axis)
    return a, b

  def hoist(self):
    """Stacks the factors once for the calls that follow (extensions item 5: `generate` hoists them out of its
    decode loop); `_gathered` reads them instead of stacking per call."""
    if len(self.names) > 1 and self._gatherable():
      a, b = self._stacked()
      self.hoisted = nnx.data((Hoisted(a), Hoisted(b)))

  def _gathered(self, xd: jax.Array, ids: jax.Array) -> jax.Array:
    """The LoRA update of a mixed batch, gathering each example's factors. xd [B, ..., in] -> [B, ..., out]."""
    units = [self.lora[n] for n in self.names]
    a, b = (self.hoisted[0][...], self.hoisted[1][...]) if self.hoisted is not None else self._stacked()
    scale = jnp.asarray([u.scale for u in units], jnp.float32)
    local, present = self.local_ids(ids)
    scale_e = jnp.where(present, jnp.take(scale, local), 0.0)  # no update for -1 / adapters not held here
    return gathered_lora_delta(units[0].drop(xd), a, b, scale_e, local)

  def __call__(self, x: jax.Array, ctx: Ctx = None) -> jax.Array:
    y = self.base(x, ctx)
    xd = x.astype(self.base.dtype)
    ids = self.example_ids(ctx, x.shape[0])
    if ids is not None and self.names and self._gatherable():
      if self.merged:
        raise ValueError(f"LoRA {self.merged[0]!r} is merged into the base weights; unmerge it before "
                         f"per-example selection")
      return y + self._gathered(xd, ids)
    for name, w in self.selection(ctx, x.shape[0]):
      if name in self.merged:
        if w is not None:
          raise ValueError(f"LoRA {name!r} is merged into the base weights; unmerge it before per-example "
                           f"selection")
        continue
      u = self.lora[name]
      xi = u.drop(xd)
      if u.lora_magnitude is None:
        delta = lora_delta(xi, u.lora_a[...], u.lora_b[...], u.scale)
      else:
        delta = dora_output(xi, self.base.kernel[...], u.lora_a[...], u.lora_b[...], u.lora_magnitude[...],
                            u.scale)
      y = y + named.weigh(delta, w)
    return y

  def merge(self, names):
    """Folds adapters into base.kernel (in place); merged ones are skipped in the forward pass."""
    for name in names:
      if name in self.merged or name not in self.names:
        continue
      u, kernel = self.lora[name], self.base.kernel[...]
      delta = u.scale * jnp.matmul(u.lora_a[...], u.lora_b[...])  # [..., in, out]: stacked layers batch
      if u.lora_magnitude is None:
        new = kernel + delta.astype(kernel.dtype)
      else:
        norm = dora_norm(kernel, u.lora_a[...], u.lora_b[...], u.scale)
        u.merged_norm = nnx.Cache(norm)
        new = (u.lora_magnitude[...] / norm)[..., None, :] * (kernel + delta)
      self.base.kernel[...] = new.astype(kernel.dtype)
      self.merged = self.merged + (name,)

  def unmerge(self):
    for name in reversed(self.merged):
      u, kernel = self.lora[name], self.base.kernel[...]
      delta = u.scale * jnp.matmul(u.lora_a[...], u.lora_b[...])
      if u.lora_magnitude is not None:
        kernel = kernel * (u.merged_norm[...] / u.lora_magnitude[...])[..., None, :]
        u.merged_norm = nnx.data(None)
      self.base.kernel[...] = (kernel - delta).astype(kernel.dtype)
    self.merged = ()


class LoraEmbedding(named.Named):
  """Embedding + named LoRAs (HF peft layout). `attend` (tied LM head) uses the base table only."""

  def __init__(self, base: Embedding):
    self.base = base
    self.lora = nnx.Dict()
    self.merged: tuple[str, ...] = ()

  def add(self, name: str, global_id: int, *, r: int, alpha: float, rslora: bool, dora: bool, dropout: float,
          init: str, rngs: nnx.Rngs):
    if dora:
      raise ValueError("DoRA is not defined for embeddings; use dora=False for embedding targets")
    num, dim = self.base.embedding.shape
    dt = self.base.embedding[...].dtype
    a, b = jnp.zeros((num, r), dt), jax.random.normal(rngs.params(), (r, dim), dt)
    self.add_name(name, global_id)
    self.lora[name] = LoraUnit(a, b, alpha=alpha, rslora=rslora, dropout=0.0, rngs=rngs,
                                axes=("vocab", "embed"))

  def __call__(self, ids: jax.Array, ctx: Ctx = None) -> jax.Array:
    y = self.base(ids, ctx)
    for name, w in self.selection(ctx, ids.shape[0]):
      if name in self.merged:
        continue
      u = self.lora[name]
      delta = jnp.dot(jnp.take(u.lora_a[...], ids, axis=0), u.lora_b[...]) * u.scale
      y = y + named.weigh(delta.astype(y.dtype), w)
    return y

  def attend(self, x: jax.Array) -> jax.Array:
    return self.base.attend(x)

  def merge(self, names):
    for name in names:
      if name in self.merged or name not in self.names:
        continue
      u = self.lora[name]
      table = self.base.embedding[...]
      self.base.embedding[...] = (table + u.scale * jnp.dot(u.lora_a[...], u.lora_b[...])).astype(table.dtype)
      self.merged = self.merged + (name,)

  def unmerge(self):
    for name in reversed(self.merged):
      u = self.lora[name]
      table = self.base.embedding[...]
      self.base.embedding[...] = (table - u.scale * jnp.dot(u.lora_a[...], u.lora_b[...])).astype(table.dtype)
    self.merged = ()


LORA_WRAPPERS = (LoraDense, LoraEmbedding)


def set_mixed_batch(model: nnx.Module, mode: str) -> nnx.Module:
  """How LoRA Dense layers compute ctx["adapter_ids"] batches: "gather" (default) or "mask"; returns model."""
  if mode not in ("gather", "mask"):
    raise ValueError(f"unknown mixed-batch mode {mode!r}; choose 'gather' or 'mask'")
  for _, m in nnx.iter_modules(model):
    if isinstance(m, LoraDense):
      m.mixed_batch = mode
  return model


@register("lora", r=8, alpha=8.0, rslora=False, dora=False, dropout=0.0, init="kaiming", targets="qv")
def attach(model: nnx.Module, cfg, rngs: nnx.Rngs) -> None:
  """LoRA on every Dense / Embedding whose path matches `targets` (already-wrapped ones get another name)."""
  if not isinstance(cfg.r, int) or cfg.r <= 0:
    raise ValueError(f"LoRA rank r must be a positive integer, got {cfg.r!r}")
  if cfg.alpha <= 0:
    raise ValueError(f"LoRA alpha must be > 0, got {cfg.alpha!r}")
  if not 0.0 <= cfg.dropout < 1.0:
    raise ValueError(f"LoRA dropout must be in [0, 1), got {cfg.dropout!r}")
  name = cfg.get("name") or "default"
  gid = named.register_name(model, name)
  found = find_targets(model, cfg.targets, (Dense, Embedding) + LORA_WRAPPERS, what="LoRA")
  scanned = core.scanned_stacks(model)
  for path, module in found.items():
    if isinstance(module, (Dense, Embedding)):
      wrapper = LoraDense(module, core.layer_count(model, path, scanned)) if isinstance(module, Dense) \
          else LoraEmbedding(module)
      replace_module(model, path, wrapper)
      module = wrapper
    module.add(name, gid, r=cfg.r, alpha=cfg.alpha, rslora=cfg.rslora, dora=cfg.dora, dropout=cfg.dropout,
               init=cfg.init, rngs=rngs)
  named.sync_names(model)


def lora_modules(model: nnx.Module) -> dict[str, nnx.Module]:
  """{path: LoRA wrapper} in `model`."""
  return {path_str(p): m for p, m in nnx.iter_modules(model) if isinstance(m, LORA_WRAPPERS)}


def merge(model: nnx.Module, names=None) -> nnx.Module:
  """Folds LoRA weights (the active ones, or `names`) into the base weights in place; returns model."""
  for m in lora_modules(model).values():
    m.merge(m.active if names is None else ((names,) if isinstance(names, str) else tuple(names)))
  return model


def unmerge(model: nnx.Module) -> nnx.Module:
  """Undoes `merge` in place; returns model."""
  for m in lora_modules(model).values():
    m.unmerge()
  return model


def merge_and_unload(model: nnx.Module, names=None) -> nnx.Module:
  """Merges LoRA into the base weights and puts the plain Dense/Embedding modules back (in place)."""
  merge(model, names)
  for path, m in lora_modules(model).items():
    replace_module(model, path, m.base)
  return model


# ---------------------------------------------------------------------------------------------- HF peft

_HF_SUFFIXES = ("lora_A.weight", "lora_B.weight", "lora_magnitude_vector", "lora_embedding_A", "lora_embedding_B")


def _save_hf(model, names, adapter, tensors) -> dict:
  units, targets = [], []
  scanned = core.scanned_stacks(model)
  for path, m in lora_modules(model).items():
    if adapter not in m.names:
      continue
    if m.merged:
      raise ValueError(f"{path} has merged LoRA weights; unmerge before save_hf")
    u = m.lora[adapter]
    for ours, i in hf_io.layers_of(path, scanned):  # a scanned module: one HF module per layer
      theirs = names[core.unwrapped_path(ours)]
      a, b = hf_io.to_np(hf_io.take(u.lora_a[...], i).T), hf_io.to_np(hf_io.take(u.lora_b[...], i).T)
      key = hf_io.MODEL_PREFIX + theirs
      if isinstance(m, LoraEmbedding):
        tensors[f"{key}.lora_embedding_A"], tensors[f"{key}.lora_embedding_B"] = a, b
      else:
        tensors[f"{key}.lora_A.weight"], tensors[f"{key}.lora_B.weight"] = a, b
      if u.lora_magnitude is not None:
        tensors[f"{key}.lora_magnitude_vector"] = hf_io.to_np(hf_io.take(u.lora_magnitude[...], i))
      targets.append(theirs)
    units.append(u)
  if not units:
    raise ValueError(f"no LoRA named {adapter!r}; attached: {list(named.adapter_names(model))}")
  spec = {(u.r, u.alpha, u.rslora, u.lora_magnitude is not None) for u in units}
  if len(spec) > 1:
    raise ValueError(f"LoRA {adapter!r} mixes ranks/alphas/rsLoRA/DoRA across modules {sorted(spec)}; HF peft "
                     "needs one setting per adapter")
  r, alpha, rslora, dora = spec.pop()
  return {"r": r, "lora_alpha": alpha, "use_rslora": rslora, "use_dora": dora, "target_modules": sorted(targets),
          "lora_dropout": float(units[0].dropout.rate) if units[0].dropout is not None else 0.0, "bias": "none",
          "fan_in_fan_out": hf_io.fan_in_fan_out(model), "init_lora_weights": True}


def _load_hf(model, cfg, tensors, adapter):
  for key in ("rank_pattern", "alpha_pattern"):
    if cfg.get(key):
      raise ValueError(f"LoRA adapters with a per-module {key} are not supported")
  mods, rest = hf_io.module_tensors(tensors, _HF_SUFFIXES)
  if not mods:
    raise ValueError("the LoRA adapter holds no lora_A/lora_B tensors")
  ours = hf_io.our_paths(model, mods)
  r = int(cfg["r"])
  core.apply(model, {"method": "lora", "r": r, "alpha": float(cfg["lora_alpha"]),
                     "rslora": bool(cfg.get("use_rslora")), "dora": bool(cfg.get("use_dora")),
                     "targets": hf_io.exact_targets(ours.values()), "name": adapter, "train_head": False})
  wrappers, scanned = lora_modules(model), core.scanned_stacks(model)
  for theirs, t in mods.items():
    path, i = core.locate(model, ours[theirs], scanned)  # i: the layer of a scanned module's stacked factors
    u = wrappers[path].lora[adapter]
    a = t.get("lora_A.weight", t.get("lora_embedding_A"))
    b = t.get("lora_B.weight", t.get("lora_embedding_B"))
    if a is None or b is None:
      raise ValueError(f"{theirs}: the adapter lacks lora_A or lora_B")
    hf_io.assign(u.lora_a, a.T, f"{theirs}.lora_A", i)
    hf_io.assign(u.lora_b, b.T, f"{theirs}.lora_B", i)
    if "lora_magnitude_vector" in t:
      hf_io.assign(u.lora_magnitude, t["lora_magnitude_vector"], f"{theirs}.lora_magnitude_vector", i)
  return rest


hf_io.register_hf(hf_io.HFMethod("LORA", lambda model: bool(lora_modules(model)), _save_hf, _load_hf))
