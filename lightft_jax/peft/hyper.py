"""Hypernetworks (HyperFormer++): one shared generator emits per-example adapter / LoRA / prefix / LayerNorm weights.

A site is a module the method changes (an `attn.out` or `mlp` for adapters, a Dense for LoRA, an Attention for
prefixes, a Norm for conditional LayerNorm). For every call and site the hypernetwork builds

  z    = task_embed[ctx["task_ids"]]                  [B, task_dim]   (condition="task")
       | ctx["condition"]                             [B, C]          (condition="context")
  I    = projector(concat(z, layer_embed[l], block_embed[k]))   [B, proj_dim]
  W    = generator_kind(I)                            [B, *shape]     (one generator per emitted tensor)

where l is the site's layer id (encoder layers first, then decoder layers) and k its block type
(e.g. `lora:attn.query`, `adapter:mlp`). Every example of a batch gets its own weights, applied with
einsum / batched matmul, so one batch mixes tasks (or unseen conditions) without a loop over tasks.

Generators are sized to the largest site of their kind; a smaller site uses the leading slice. The
generators of the last factor of each emitted update (adapter up-projection, LoRA B, LayerNorm scale/shift
deltas) start at zero, so a fresh hypernetwork leaves the model's output unchanged; adapter down, LoRA A and
prefix generators start from a small normal (a zero prefix would still take attention mass).

The context-conditioned variant takes its condition from `ContextEncoder`, which wraps a text encoder passed in
as a function (by default `models.sentence.SentenceEncoder.load()`: mean-pooled hidden states of a frozen
MiniLM) over a task description or a set of demonstrations, so an unseen task gets weights without a gradient
step. This module loads no checkpoint itself.

Scanned stacks (scan_layers=True): a site is the stack's one module for all its layers, its layer id a
`core.LayerIndex` [L] that the scan slices; the HyperNet's parameters are `LAYER_SHARED`, so every layer reads
them whole. The same weights give the unrolled model's outputs.
"""

from __future__ import annotations

import re
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from lightft_jax.models.layers import Attention, Ctx, Dense, Norm, activation
from lightft_jax.peft.adapters import adapter_fn
from lightft_jax.peft import core
from lightft_jax.peft.core import LAYER_SHARED, PeftParam, find_targets, register, replace_module
from lightft_jax.peft.lora import lora_delta, lora_scale

EMITS = ("adapter", "lora", "prefix", "ln")
CONDITIONS = ("task", "context")
ROOT_ATTR = "cond_hyper"  # sorts before encoder/decoder, so the shared module's state path is `cond_hyper.*`

ADAPTER_TARGETS = r".*layers\.\d+\.(attn\.out|mlp)"
PREFIX_TARGETS = r".*layers\.\d+\.attn"
LN_TARGETS = r".*layers\.\d+\.(attn_norm|mlp_norm)"


class HyperParam(PeftParam):
  """A hypernetwork parameter: task / layer / block embeddings, task projector, shared generators."""


def _shared(value: jax.Array) -> HyperParam:
  """A HyperParam that every layer of a scanned stack reads whole (the one HyperNet serves all sites)."""
  return HyperParam(value, **{LAYER_SHARED: True})


# ----------------------------------------------------------------------------- per-call conditioning

def ctx_task_ids(ctx: Ctx, n_tasks: int, what: str, batch: int | None = None) -> jax.Array:
  """int32 [B] task ids from ctx["task_ids"]; ids outside [0, n_tasks) are an error when not traced.

  With a single task (n_tasks=1) and no ctx["task_ids"], every one of the `batch` examples is task 0, so a
  single-task run (a plain classification dataset, whose batches carry no task ids) needs no extra input.
  """
  if not ctx or ctx.get("task_ids") is None:
    if n_tasks == 1 and batch is not None:
      return jnp.zeros((batch,), jnp.int32)
    raise ValueError(f"{what} needs per-example task ids: call the model with ctx={{'task_ids': int32 [B]}}")
  ids = ctx["task_ids"]
  if not isinstance(ids, jax.core.Tracer):
    bad = np.asarray(ids)[(np.asarray(ids) < 0) | (np.asarray(ids) >= n_tasks)]
    if bad.size:
      raise ValueError(f"{what}: task ids {sorted(set(bad.tolist()))} out of range; valid ids are 0..{n_tasks - 1}")
  return jnp.asarray(ids, jnp.int32).reshape(-1)


def ctx_condition(ctx: Ctx, dim: int, what: str) -> jax.Array:
  """float32 [B, dim] condition vectors from ctx["condition"]."""
  if not ctx or ctx.get("condition") is None:
    raise ValueError(f"{what} needs condition vectors: call the model with ctx={{'condition': float [B, {dim}]}}")
  c = jnp.asarray(ctx["condition"], jnp.float32)
  if c.ndim != 2 or c.shape[1] != dim:
    raise ValueError(f"{what}: ctx['condition'] must have shape [B, {dim}], got {c.shape}")
  return c


def site_layer_ids(model: nnx.Module, paths: Sequence[str], method: str) -> dict[str, Any]:
  """{path: global layer id}: encoder layers are 0..n_enc-1, decoder layers follow. A module of a scanned stack
  (`decoder.layers.attn.query`) gets a `core.LayerIndex` [L] of its layers' ids."""
  offsets, n = {}, 0
  for stack in ("encoder", "decoder"):
    if hasattr(model, stack):
      offsets[stack] = n
      n += getattr(model, stack).n_layers
  scanned = core.scanned_stacks(model)
  ids = {}
  for p in paths:
    m = re.match(r"^(encoder|decoder)\.layers\.(?:(\d+)\.)?", p)
    if m is None or (m.group(2) is None) != (f"{m.group(1)}.layers" in scanned):
      raise ValueError(f"PEFT method {method!r} targets modules inside encoder/decoder layers; {p!r} is not one")
    if m.group(2) is None:
      ids[p] = core.layer_index(scanned[f"{m.group(1)}.layers"], offsets[m.group(1)])
    else:
      ids[p] = offsets[m.group(1)] + int(m.group(2))
  return ids


def block_type(path: str) -> str:
  """`decoder.layers.3.attn.query` (or a scanned stack's `decoder.layers.attn.query`) -> `attn.query` (where in a
  block a site sits)."""
  return re.sub(r"^.*?layers\.(\d+\.)?", "", path)


def total_layers(model: nnx.Module) -> int:
  return sum(getattr(model, s).n_layers for s in ("encoder", "decoder") if hasattr(model, s))


# ----------------------------------------------------------------------------- per-example weights

def adapter_apply(y: jax.Array, down: jax.Array, down_b: jax.Array, up: jax.Array, up_b: jax.Array,
                  act) -> jax.Array:
  """y + adapter(y), weights per example. y [B,T,D]; down [B,D,M]; down_b [B,M]; up [B,M,D]; up_b [B,D]."""
  return y + jax.vmap(adapter_fn, in_axes=(0, 0, 0, 0, 0, None))(y, down, down_b, up, up_b, act)


def lora_apply(x: jax.Array, a: jax.Array, b: jax.Array, scale: float) -> jax.Array:
  """scale * (x @ a) @ b, weights per example. x [B,T,Din]; a [B,Din,R]; b [B,R,Dout] -> [B,T,Dout]."""
  return jax.vmap(lora_delta, in_axes=(0, 0, 0, None))(x, a, b, scale)


def normalize(norm: Norm, x: jax.Array) -> jax.Array:
  """The statistics part of `norm` (LayerNorm centring or RMS scaling, float32), before scale and bias."""
  x32 = x.astype(jnp.float32)
  if norm.kind == "layernorm":
    x32 = x32 - x32.mean(-1, keepdims=True)
  return x32 * jax.lax.rsqrt(jnp.mean(jnp.square(x32), -1, keepdims=True) + norm.eps)


# ----------------------------------------------------------------------------- the shared hypernetwork

class Generator(nnx.Module):
  """Linear map I [B,P] -> W [B,*shape] (kernel [P,*shape], bias [*shape]); `sizes` takes a leading slice."""

  def __init__(self, proj_dim: int, shape: tuple[int, ...], *, std: float, rngs: nnx.Rngs):
    self.shape = tuple(shape)
    init = nnx.initializers.normal(std) if std > 0 else nnx.initializers.zeros
    self.kernel = _shared(init(rngs.params(), (proj_dim, *shape), jnp.float32))
    self.bias = _shared(jnp.zeros(shape, jnp.float32))

  def __call__(self, i: jax.Array, sizes: tuple[int, ...] | None = None) -> jax.Array:
    sl = tuple(slice(0, s) for s in (sizes or self.shape))
    return jnp.einsum("bp,p...->b...", i, self.kernel[...][(slice(None),) + sl]) + self.bias[...][sl]


class HyperNet(nnx.Module):
  """Task (or context) embedding + layer-id + block-type embeddings -> task projector -> shared generators.

  `generators` maps a name (e.g. "lora_a") to (shape, init std); std 0 means zero-initialised.
  """

  def __init__(self, *, condition: str, n_tasks: int | None, condition_dim: int | None, task_dim: int,
               n_layers: int, n_blocks: int, site_dim: int, proj_hidden: int, proj_dim: int,
               generators: dict[str, tuple[tuple[int, ...], float]], rngs: nnx.Rngs):
    self.condition = condition
    unit = nnx.initializers.normal(1.0)
    if condition == "task":
      self.task_embed = _shared(unit(rngs.params(), (n_tasks, task_dim), jnp.float32))
      self.n_tasks, z_dim = n_tasks, task_dim
    else:
      self.condition_dim, z_dim = condition_dim, condition_dim
    self.layer_embed = _shared(unit(rngs.params(), (n_layers, site_dim), jnp.float32))
    self.block_embed = _shared(unit(rngs.params(), (n_blocks, site_dim), jnp.float32))
    lecun = nnx.initializers.lecun_normal()
    d_in = z_dim + 2 * site_dim
    self.proj_hidden = _shared(lecun(rngs.params(), (d_in, proj_hidden), jnp.float32))
    self.proj_hidden_bias = _shared(jnp.zeros((proj_hidden,), jnp.float32))
    self.proj_out = _shared(lecun(rngs.params(), (proj_hidden, proj_dim), jnp.float32))
    self.proj_out_bias = _shared(jnp.zeros((proj_dim,), jnp.float32))
    self.gen = nnx.Dict({name: Generator(proj_dim, shape, std=std, rngs=rngs)
                         for name, (shape, std) in generators.items()})

  def embed(self, ctx: Ctx, batch: int | None = None) -> jax.Array:
    """z [B, task_dim | C] for this call (`batch`: B, for a single task without ctx task ids)."""
    if self.condition == "task":
      ids = ctx_task_ids(ctx, self.n_tasks, "hypernetwork (condition='task')", batch)
      return jnp.take(self.task_embed[...], ids, axis=0)
    return ctx_condition(ctx, self.condition_dim, "hypernetwork (condition='context')")

  def project(self, ctx: Ctx, layer, block: int, batch: int | None = None) -> jax.Array:
    """I [B, proj_dim] for one site (`layer`: an int, or a traced scalar inside a scan)."""
    z = self.embed(ctx, batch)
    site = jnp.concatenate([self.layer_embed[...][layer], self.block_embed[...][block]])
    h = jnp.concatenate([z, jnp.broadcast_to(site, (z.shape[0], site.shape[0]))], -1)
    h = jax.nn.relu(h @ self.proj_hidden[...] + self.proj_hidden_bias[...])
    return h @ self.proj_out[...] + self.proj_out_bias[...]

  def __call__(self, name: str, i: jax.Array, sizes: tuple[int, ...] | None = None) -> jax.Array:
    return self.gen[name](i, sizes)


class HyperSite(nnx.Module):
  """Common part of every site: a reference to the shared HyperNet and the site's (layer, block) ids (the layer
  id is a `core.LayerIndex` [L] on a scanned stack's module)."""

  def _init_site(self, hyper: HyperNet, layer, block: int):
    self.hyper, self.layer_id, self.block_id = hyper, layer, block

  def rep(self, ctx: Ctx, batch: int | None = None) -> jax.Array:
    return self.hyper.project(ctx, core.layer_value(self.layer_id), self.block_id, batch)


class HyperAdapter(HyperSite):
  """base(x) followed by a generated bottleneck adapter (d -> m -> d, residual). Wraps attn.out or mlp."""

  def __init__(self, base: nnx.Module, hyper: HyperNet, layer: int, block: int, *, d: int, m: int, act: str):
    self.base, self.d, self.m, self.act_name = base, d, m, act
    self._init_site(hyper, layer, block)

  def __call__(self, x: jax.Array, ctx: Ctx = None) -> jax.Array:
    y, i, h = self.base(x, ctx), self.rep(ctx, x.shape[0]), self.hyper
    return adapter_apply(y, h("adapter_down", i), h("adapter_down_bias", i), h("adapter_up", i),
                         h("adapter_up_bias", i), activation(self.act_name))


class HyperLoRA(HyperSite):
  """base(x) + alpha/r * (x @ A_b) @ B_b with A_b [Din,R], B_b [R,Dout] generated per example. Wraps a Dense."""

  def __init__(self, base: Dense, hyper: HyperNet, layer: int, block: int, *, r: int, scale: float):
    self.base, self.r, self.scale = base, r, scale
    self._init_site(hyper, layer, block)

  def __call__(self, x: jax.Array, ctx: Ctx = None) -> jax.Array:
    i = self.rep(ctx, x.shape[0])
    a = self.hyper("lora_a", i, (self.base.d_in, self.r))
    b = self.hyper("lora_b", i, (self.r, self.base.d_out))
    return self.base(x, ctx) + lora_apply(x, a, b, self.scale)


class HyperPrefix(HyperSite):
  """An `Attention.extra_kv` (`ExtraKV`): generated key/value prefixes [B,P,K,Dh] per example. It states no
  `num_slots`, so under a relative position bias its slots get zero bias."""

  def __init__(self, hyper: HyperNet, layer: int, block: int, *, length: int, kv_heads: int, head_dim: int):
    self.shape = (length, kv_heads, head_dim)
    self._init_site(hyper, layer, block)

  def __call__(self, batch_size: int, ctx: Ctx = None) -> tuple[jax.Array, jax.Array]:
    i = self.rep(ctx, batch_size)
    if i.shape[0] != batch_size:
      raise ValueError(f"hyper prefix: conditioning has batch {i.shape[0]} but the input has batch {batch_size}")
    return self.hyper("prefix_k", i, self.shape), self.hyper("prefix_v", i, self.shape)


class HyperNorm(HyperSite):
  """Conditional LayerNorm: normalize(x) * (scale + dscale_b) + (bias + dshift_b), deltas generated [B,D]."""

  def __init__(self, base: Norm, hyper: HyperNet, layer: int, block: int, *, d: int):
    self.base, self.d = base, d
    self._init_site(hyper, layer, block)

  def __call__(self, x: jax.Array, ctx: Ctx = None) -> jax.Array:
    i = self.rep(ctx, x.shape[0])
    scale = self.base.scale[...].astype(jnp.float32) + self.hyper("ln_scale", i, (self.d,))
    shift = self.hyper("ln_shift", i, (self.d,))
    if self.base.bias is not None:
      shift = shift + self.base.bias[...].astype(jnp.float32)
    y = normalize(self.base, x) * scale[:, None] + shift[:, None]
    return y.astype(self.base.dtype)


# ----------------------------------------------------------------------------- attach

HYPER_OPTIONS = dict(
    emit=("adapter", "ln"), condition="task", n_tasks=None, condition_dim=None,
    task_dim=64, site_dim=64, proj_hidden=128, proj_dim=64, init_std=1e-2,
    adapter_targets=ADAPTER_TARGETS, reduction_factor=16, adapter_act="relu",
    lora_targets="qv", r=8, alpha=8.0,
    prefix_targets=PREFIX_TARGETS, prefix_len=8,
    ln_targets=LN_TARGETS,
)


def _validate(cfg) -> tuple[str, ...]:
  emit = (cfg.emit,) if isinstance(cfg.emit, str) else tuple(cfg.emit)
  bad = [e for e in emit if e not in EMITS]
  if bad or not emit:
    raise ValueError(f"hyper: emit={emit!r} has unknown kinds {bad}; choose one or more of {EMITS}")
  if cfg.condition not in CONDITIONS:
    raise ValueError(f"hyper: condition={cfg.condition!r}; choose from {CONDITIONS}")
  if cfg.condition == "task" and (cfg.n_tasks is None or cfg.n_tasks <= 0):
    raise ValueError(f"hyper with condition='task' needs n_tasks > 0, got {cfg.n_tasks!r}")
  if cfg.condition == "context" and (cfg.condition_dim is None or cfg.condition_dim <= 0):
    raise ValueError(f"hyper with condition='context' needs condition_dim > 0 (e.g. 384 for MiniLM), "
                     f"got {cfg.condition_dim!r}")
  for name in ("task_dim", "site_dim", "proj_hidden", "proj_dim"):
    if cfg[name] <= 0:
      raise ValueError(f"hyper: {name} must be > 0, got {cfg[name]}")
  if "lora" in emit and cfg.r <= 0:
    raise ValueError(f"hyper: LoRA rank r must be > 0, got {cfg.r}")
  if "adapter" in emit and cfg.reduction_factor <= 0:
    raise ValueError(f"hyper: reduction_factor must be > 0, got {cfg.reduction_factor}")
  if "prefix" in emit and cfg.prefix_len <= 0:
    raise ValueError(f"hyper: prefix_len must be > 0, got {cfg.prefix_len}")
  return emit


def _sites(model, emit, cfg) -> dict[str, dict[str, nnx.Module]]:
  """{kind: {path: module}} of the modules each emitted kind changes."""
  spec = {"adapter": (cfg.adapter_targets, (nnx.Module,)), "lora": (cfg.lora_targets, (Dense,)),
          "prefix": (cfg.prefix_targets, (Attention,)), "ln": (cfg.ln_targets, (Norm,))}
  return {k: find_targets(model, spec[k][0], spec[k][1], what=f"hyper {k}") for k in emit}


def _generators(model, sites, cfg) -> dict[str, tuple[tuple[int, ...], float]]:
  c, std, gens = model.cfg, cfg.init_std, {}
  if "adapter" in sites:
    d, m = c.d_model, max(1, c.d_model // cfg.reduction_factor)
    gens.update(adapter_down=((d, m), std), adapter_down_bias=((m,), 0.0), adapter_up=((m, d), 0.0),
                adapter_up_bias=((d,), 0.0))
  if "lora" in sites:
    d_in = max(mod.d_in for mod in sites["lora"].values())
    d_out = max(mod.d_out for mod in sites["lora"].values())
    gens.update(lora_a=((d_in, cfg.r), std), lora_b=((cfg.r, d_out), 0.0))
  if "prefix" in sites:
    shape = (cfg.prefix_len, c.num_kv_heads, c.dim_head)
    gens.update(prefix_k=(shape, std), prefix_v=(shape, std))
  if "ln" in sites:
    gens.update(ln_scale=((c.d_model,), 0.0), ln_shift=((c.d_model,), 0.0))
  return gens


def attach_hyper(model: nnx.Module, cfg, rngs: nnx.Rngs) -> None:
  """Builds the shared HyperNet at `model.cond_hyper` and wraps every site with a generated-weight module."""
  emit = _validate(cfg)
  if hasattr(model, ROOT_ATTR):
    raise ValueError("a hypernetwork is already attached to this model; emit several kinds from one config "
                     f"with emit=({', '.join(repr(e) for e in EMITS)})")
  sites = _sites(model, emit, cfg)
  for p, attn in sites.get("prefix", {}).items():
    if attn.extra_kv is not None:
      raise ValueError(f"hyper prefix: {p} already has extra key/value slots (another prefix method is attached)")
  all_paths = [p for kind in emit for p in sites[kind]]
  layer_ids = site_layer_ids(model, all_paths, cfg.method)
  blocks = sorted({f"{kind}:{block_type(p)}" for kind in emit for p in sites[kind]})
  hyper = HyperNet(condition=cfg.condition, n_tasks=cfg.n_tasks, condition_dim=cfg.condition_dim,
                   task_dim=cfg.task_dim, n_layers=total_layers(model), n_blocks=len(blocks),
                   site_dim=cfg.site_dim, proj_hidden=cfg.proj_hidden, proj_dim=cfg.proj_dim,
                   generators=_generators(model, sites, cfg), rngs=rngs)
  setattr(model, ROOT_ATTR, hyper)
  c = model.cfg
  for kind in emit:
    for p, mod in sites[kind].items():
      ids = (hyper, layer_ids[p], blocks.index(f"{kind}:{block_type(p)}"))
      if kind == "adapter":
        replace_module(model, p, HyperAdapter(mod, *ids, d=c.d_model, m=max(1, c.d_model // cfg.reduction_factor),
                                              act=cfg.adapter_act))
      elif kind == "lora":
        replace_module(model, p, HyperLoRA(mod, *ids, r=cfg.r, scale=lora_scale(cfg.r, cfg.alpha, False)))
      elif kind == "prefix":
        mod.extra_kv = HyperPrefix(*ids, length=cfg.prefix_len, kv_heads=c.num_kv_heads, head_dim=c.dim_head)
      else:
        replace_module(model, p, HyperNorm(mod, *ids, d=c.d_model))


register("hyper", **HYPER_OPTIONS)(attach_hyper)
register("hyper_adapter", **{**HYPER_OPTIONS, "emit": ("adapter",)})(attach_hyper)
register("hyper_lora", **{**HYPER_OPTIONS, "emit": ("lora",)})(attach_hyper)
register("hyper_prefix", **{**HYPER_OPTIONS, "emit": ("prefix",)})(attach_hyper)


# ----------------------------------------------------------------------------- context conditions

class ContextEncoder:
  """Condition vectors for condition="context" hypernetworks from a text encoder that comes in as a function.

  `encode`: texts -> [N, C], e.g. `lightft_jax.models.sentence.SentenceEncoder.load()` (mean-pooled hidden states
  of the frozen all-MiniLM-L6-v2, C = 384); `dim` = C (read from `encode.dim` when not given).
  `encoder(texts)` -> float32 [B, C]: one vector per task description.
  `encoder.demonstrations(groups)` -> [B, C]: each example's condition is the mean of the vectors of its
  demonstrations (list of lists of strings).
  """

  def __init__(self, encode: Callable[[Sequence[str]], Any], dim: int | None = None):
    self.encode = encode
    self._dim = dim

  @property
  def dim(self) -> int:
    return int(self._dim if self._dim is not None else self.encode.dim)

  def __call__(self, texts: Sequence[str]) -> jax.Array:
    if isinstance(texts, str) or not texts:
      raise ValueError("ContextEncoder expects a non-empty list of strings")
    return jax.lax.stop_gradient(jnp.asarray(self.encode(list(texts)), jnp.float32))

  def demonstrations(self, groups: Sequence[Sequence[str]]) -> jax.Array:
    if not groups or any(not g for g in groups):
      raise ValueError("ContextEncoder.demonstrations expects a non-empty list of non-empty lists of strings")
    flat = self([t for g in groups for t in g])
    bounds = np.cumsum([0] + [len(g) for g in groups])
    return jnp.stack([flat[s:e].mean(0) for s, e in zip(bounds[:-1], bounds[1:])])


__all__ = ["ContextEncoder", "HyperAdapter", "HyperLoRA", "HyperNet", "HyperNorm", "HyperParam", "HyperPrefix",
           "attach_hyper"]
