"""The PEFT mechanism shared by every method: variable types, method registry, target matching, `apply`.

A method is a function `attach(model, cfg, rngs)` registered under a name with its option defaults. It
changes the NNX model in place: wraps modules it targets (found by regex over module paths), fills an
extension slot the model declares (`Attention.extra_kv`, `Transformer.input_transform`; models/extensions.py),
or re-types existing parameters as trainable. Whatever it makes
trainable is a `PeftParam`, so "what trains" is one type filter and `train/` needs no method knowledge.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
from typing import Any, Callable, Iterable

import jax
import ml_collections
from flax import nnx


class PeftParam(nnx.Param):
  """Base type of every parameter that a PEFT method adds or un-freezes."""


class TunedParam(PeftParam):
  """An existing model parameter made trainable (BitFit, LayerNorm tuning, layer-wise, the task head)."""


@dataclasses.dataclass(frozen=True)
class Method:
  name: str
  attach: Callable[[nnx.Module, ml_collections.ConfigDict, nnx.Rngs], None]
  defaults: dict[str, Any]


_METHODS: dict[str, Method] = {}


def register(name: str, **defaults):
  """Decorator: `@register("lora", r=8, alpha=8, targets="qv")` over `attach(model, cfg, rngs)`."""

  def deco(fn):
    if name in _METHODS:
      raise ValueError(f"PEFT method {name!r} registered twice")
    _METHODS[name] = Method(name, fn, dict(defaults))
    return fn

  return deco


def methods() -> list[str]:
  return sorted(_METHODS)


# ----------------------------------------------------------------------------- module paths

def path_str(path: Iterable[Any]) -> str:
  return ".".join(str(p) for p in path)


def module_paths(model: nnx.Module) -> dict[str, nnx.Module]:
  """{"decoder.layers.0.attn.query": module, ...} for every submodule (root excluded)."""
  return {path_str(p): m for p, m in nnx.iter_modules(model) if p}


# Target presets by name; each is a regex over module paths. `{attn}` matches self- and cross-attention.
PRESET_TARGETS = {
    "q": r".*attn\.(query)$",
    "v": r".*attn\.(value)$",
    "qv": r".*attn\.(query|value|qkv)$",
    "qkv": r".*attn\.(query|key|value|qkv)$",
    "attn": r".*attn\.(query|key|value|qkv|out)$",
    "mlp": r".*mlp\.(gate|up|down)$",
    "all_linear": r".*(attn\.(query|key|value|qkv|out)|mlp\.(gate|up|down))$",
    "kv": r".*attn\.(key|value|qkv)$",
    "ffn_down": r".*mlp\.down$",
    "ffn_out": r".*mlp$",
    "embed": r"^embed\.tokens$",
}


def target_regex(targets: str | list[str]) -> str:
  """A preset name, a regex, or a list of module names (matched as path suffixes, like HF peft)."""
  if isinstance(targets, (list, tuple)):
    return r".*(^|\.)(" + "|".join(re.escape(t) for t in targets) + r")$"
  return PRESET_TARGETS.get(targets, targets)


def unwrapped_path(path: str) -> str:
  """The path with PEFT wrapper hops removed ('...attn.base.query' -> '...attn.query'): targets and HF names
  refer to modules as the bare model has them, whatever wrapped them since."""
  return re.sub(r"\.base(?=\.|$)", "", path)


def find_targets(model: nnx.Module, targets: str | list[str], types: tuple[type, ...] = (nnx.Module,),
                 what: str = "") -> dict[str, nnx.Module]:
  """Modules whose path (or unwrapped path) fully matches `targets` and whose type is one of `types`.

  Where a wrapper and the module it wraps (`.base`) both match, the wrapper is returned.

  Raises ValueError listing the module paths that exist when nothing matches.
  """
  pattern = re.compile(target_regex(targets))
  paths = module_paths(model)
  found = {p: m for p, m in paths.items()
           if isinstance(m, types) and (pattern.fullmatch(p) or pattern.fullmatch(unwrapped_path(p)))}
  found = {p: m for p, m in found.items() if not (p.endswith(".base") and p[: -len(".base")] in found)}
  if not found:
    names = [p for p, m in paths.items() if isinstance(m, types)]
    shown = "\n  ".join(names[:60]) + (f"\n  ... ({len(names) - 60} more)" if len(names) > 60 else "")
    kinds = "/".join(t.__name__ for t in types)
    raise ValueError(f"{what or 'PEFT'} targets {targets!r} (regex {pattern.pattern!r}) match no {kinds} "
                     f"module. Module paths that exist:\n  {shown}")
  return found


def get_module(model: nnx.Module, path: str) -> nnx.Module:
  node = model
  for part in path.split("."):
    node = node[int(part)] if part.isdigit() else getattr(node, part)
  return node


def replace_module(model: nnx.Module, path: str, new: nnx.Module) -> None:
  """Puts `new` where the module at `path` was."""
  parent_path, _, name = path.rpartition(".")
  parent = get_module(model, parent_path) if parent_path else model
  if name.isdigit():
    parent[int(name)] = new
  else:
    setattr(parent, name, new)


def make_trainable(module: nnx.Module, names: Iterable[str] | None = None) -> int:
  """Re-types the plain `nnx.Param`s of `module` (all, or attributes in `names`) as TunedParam.

  Returns the number of parameters made trainable. Values and sharding metadata are kept.
  """
  count = 0
  for path, var in list(nnx.iter_graph(module)):
    if type(var) is not nnx.Param or (names is not None and path[-1] not in names):
      continue
    owner = get_module(module, path_str(path[:-1])) if len(path) > 1 else module
    setattr(owner, path[-1], TunedParam(var[...], **var.get_metadata()))
    count += var[...].size
  return count


def check_unscanned(model: nnx.Module, method: str) -> None:
  """Methods that change per-layer modules (wrappers, extension slots, per-layer site ids) need one module per
  layer; a scanned stack has one stacked Block."""
  cfg = getattr(model, "cfg", None)
  if cfg is not None and getattr(cfg, "scan_layers", False):
    raise ValueError(f"PEFT method {method!r} needs a model built with scan_layers=False (it changes per-layer "
                     f"modules); rebuild with get_preset(..., scan_layers=False)")


def check_virtual_tokens(model: nnx.Module, n, what: str) -> int:
  """Validates a number of virtual tokens (prefix / prompt) against the model's positions."""
  if not isinstance(n, int) or n <= 0:
    raise ValueError(f"{what} num_tokens must be a positive integer, got {n!r}")
  mc = model.cfg
  if mc.position in ("learned", "rope") and n >= mc.max_positions:
    raise ValueError(f"{what} of {n} tokens is too long: the model allows {mc.max_positions} positions")
  return n


# ----------------------------------------------------------------------------- apply

def _as_configs(cfg) -> list[ml_collections.ConfigDict]:
  if cfg is None:
    return []
  if isinstance(cfg, (list, tuple)):
    return [c for x in cfg for c in _as_configs(x)]
  if isinstance(cfg, dict):
    cfg = ml_collections.ConfigDict(cfg)
  if "methods" in cfg and cfg.get("method") in (None, "compose"):
    return _as_configs(list(cfg.methods))
  return [cfg]


def _resolve(cfg: ml_collections.ConfigDict) -> tuple[Method, ml_collections.ConfigDict]:
  name = cfg.get("method")
  if name not in _METHODS:
    raise ValueError(f"unknown PEFT method {name!r}; available: {methods()}")
  method = _METHODS[name]
  opts = {k: v for k, v in cfg.items() if k != "method"}
  common = {"train_head", "seed", "name"}
  unknown = set(opts) - set(method.defaults) - common
  if unknown:
    hints = {u: difflib.get_close_matches(u, list(method.defaults) + sorted(common), n=3) for u in unknown}
    raise ValueError(f"unknown option(s) for PEFT method {name!r}: {hints} (options and defaults: "
                     f"{method.defaults})")
  merged = {**method.defaults, **opts, "method": name}
  return method, ml_collections.ConfigDict(merged)


def apply(model: nnx.Module, cfg, *, rngs: nnx.Rngs | None = None) -> nnx.Module:
  """Attaches one PEFT method or a composition (list) to `model` in place and returns it.

  `method="full"` / `"none"` attaches nothing (full fine-tuning). Unless `train_head=False`, the task head
  (`model.head`) is made trainable, like HF peft's `modules_to_save` for classifier heads.
  """
  configs = _as_configs(cfg)
  train_head = all(c.get("train_head", True) for c in configs)
  resolved = [_resolve(c) for c in configs]  # validate every method before changing the model
  for method, full in resolved:
    method.attach(model, full, rngs or nnx.Rngs(full.get("seed", 0)))
  if configs and not is_full_finetune(configs):
    if train_head and getattr(model, "head", None) is not None:
      make_trainable(model.head)
    model.peft_methods = tuple(getattr(model, "peft_methods", ())) + tuple(m.name for m, _ in resolved)
  return model


def is_full_finetune(configs) -> bool:
  return all(c.get("method") in ("full", "none") for c in _as_configs(configs))


def has_peft(model: nnx.Module) -> bool:
  return any(isinstance(v, PeftParam) for _, v in nnx.iter_graph(model))


def trainable_filter(model: nnx.Module):
  """nnx filter of what trains: the PeftParams once a PEFT method was applied, else every nnx.Param."""
  return PeftParam if getattr(model, "peft_methods", ()) or has_peft(model) else nnx.Param


def param_counts(model: nnx.Module) -> tuple[int, int]:
  """(trainable, total) parameter counts."""
  filt = trainable_filter(model)
  trainable = sum(x.size for x in jax.tree.leaves(nnx.state(model, filt)))
  total = sum(x.size for x in jax.tree.leaves(nnx.state(model, nnx.Param)))
  return trainable, total


def summary(model: nnx.Module) -> str:
  """Table of trainable parameters per method (variable type) and module, with totals and percent."""
  filt = trainable_filter(model)
  rows: dict[tuple[str, str], int] = {}
  for path, var in nnx.iter_graph(model):
    if isinstance(var, nnx.Variable) and nnx.filterlib.to_predicate(filt)(path, var):
      module = re.sub(r"\.\d+\.", ".*.", path_str(path[:-1]))
      key = (type(var).__name__, module)
      rows[key] = rows.get(key, 0) + var[...].size
  trainable, total = param_counts(model)
  lines = [f"{'type':<14} {'module':<48} {'params':>12}", "-" * 76]
  lines += [f"{t:<14} {m:<48} {n:>12,}" for (t, m), n in sorted(rows.items())]
  lines += ["-" * 76, f"trainable params: {trainable:,} || all params: {total:,} || "
                      f"trainable%: {100.0 * trainable / max(total, 1):.4f}"]
  return "\n".join(lines)


@register("full")
def _full(model, cfg, rngs):
  """Full fine-tuning: nothing attached; every parameter trains."""


register("none")(lambda model, cfg, rngs: None)


@register("head")
def _head_only(model, cfg, rngs):
  """Linear probing: only the task head trains (made trainable by `apply`)."""
  if getattr(model, "head", None) is None:
    raise ValueError("method 'head' needs a model with a task head (task=classification/regression/...)")
