"""The PEFT mechanism shared by every method: variable types, method registry, target matching, `apply`.

A method is a function `attach(model, cfg, rngs)` registered under a name with its option defaults. It
changes the NNX model in place: wraps modules it targets (found by regex over module paths), fills an
extension slot the model declares (`Attention.extra_kv`, `Transformer.input_transform`; models/extensions.py),
or re-types existing parameters as trainable. Whatever it makes
trainable is a `PeftParam`, so "what trains" is one type filter and `train/` needs no method knowledge.

The PEFT config section (`config.peft`) is one method, or a composition of several:

  one method   {"method": "lora", "r": 8, "targets": "qv"}                 --config.peft.r=16
  compose      {"method": "compose", "methods": ("prefix", "adapter"),     --config.peft.prefix.num_tokens=30
                "prefix": {"num_tokens": 30},                              --config.peft.adapter.reduction_factor=8
                "adapter": {"placement": "parallel", "reduction_factor": 4}}

A compose section names its parts, in the order they are attached, in `methods`; each part's options live under
its name, so every option has a dotted key (`peft.PART.OPTION`). A part's method is its own `method` key, or its
name when that key is absent, so one method can appear twice: methods=("lora_attn", "lora_mlp") with
lora_attn={"method": "lora", "targets": "attn"}, lora_mlp={"method": "lora", "targets": "mlp"}. `seed` and
`train_head` at the compose level apply to every part. (A list of method dicts, or "methods" holding such
dicts, is also accepted where a config is built in Python; its parts have no command-line keys.)

Options are checked against the method's registered ones (`register(name, **defaults)`, `options(name)`) before
anything changes: an unknown option is an `UnknownOptionError` (a KeyError and a ValueError) that names the
nearest valid options and lists them all. `check_config(section)` does the same without a model, so a config can
be checked before one loads; `check_key(section, "prefix.num_tokens")` checks one command-line key. `name`,
`seed` and `train_head` are options of every method. A config may put `options(method)` (every registered option
with its default) into its section, as configs/quickstart.py does, so the resolved config shows every option and
the command line overrides each with the type of its default.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import re
from typing import Any, Callable, Iterable

import jax
import jax.numpy as jnp
import ml_collections
from flax import nnx

from lightft_jax.models.extensions import LAYER_SHARED, axis_names  # noqa: F401  (re-exported)


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

  Where a wrapper and the module it wraps (`.base`) both match, the wrapper is returned. A module of a scanned
  stack (`decoder.layers.attn.query`, one module for all L layers) matches when every one of its layer paths
  (`decoder.layers.0.attn.query` ... `decoder.layers.{L-1}.attn.query`) does, so targets written for an unrolled
  model pick the same modules; matching only some of its layers is an error (a scanned module is changed in all
  layers or none).

  Raises ValueError listing the module paths that exist when nothing matches.
  """
  pattern = re.compile(target_regex(targets))
  paths = module_paths(model)
  scanned = scanned_stacks(model)

  def hits(p: str) -> int:
    """How many of p's layer paths (one, unless p lies in a scanned stack) match."""
    return sum(bool(pattern.fullmatch(q) or pattern.fullmatch(unwrapped_path(q))) for q in layer_paths(p, scanned))

  found, partial = {}, []
  for p, m in paths.items():
    if not isinstance(m, types):
      continue
    n, total = hits(p), len(layer_paths(p, scanned))
    if n == total:
      found[p] = m
    elif n:
      partial.append(f"{p} ({n} of its {total} layers)")
  found = {p: m for p, m in found.items() if not (p.endswith(".base") and p[: -len(".base")] in found)}
  if partial:
    raise ValueError(f"{what or 'PEFT'} targets {targets!r} match only some layers of scanned modules: "
                     f"{', '.join(partial[:4])}. A scan_layers=True stack holds one module for all its layers, "
                     f"so a method changes it in every layer or none; target every layer, or build the model with "
                     f"scan_layers=False for per-layer targets")
  if not found:
    names = [p for p, m in paths.items() if isinstance(m, types)]
    shown = "\n  ".join(names[:60]) + (f"\n  ... ({len(names) - 60} more)" if len(names) > 60 else "")
    kinds = "/".join(t.__name__ for t in types)
    raise ValueError(f"{what or 'PEFT'} targets {targets!r} (regex {pattern.pattern!r}) match no {kinds} "
                     f"module. Module paths that exist:\n  {shown}")
  return found


# ----------------------------------------------------------------------------- scanned stacks

def scanned_stacks(model: nnx.Module) -> dict[str, int]:
  """{"decoder.layers": L, ...}: the layer paths of the model's scan_layers=True stacks and their depths.

  A scanned stack (models/transformer.py `Stack`) holds one Block whose parameters are stacked [L, ...] with the
  logical axis "layers" first; its module paths have no layer index (`decoder.layers.attn.query`)."""
  from lightft_jax.models.transformer import Stack
  return {path_str(p) + ".layers": m.n_layers for p, m in nnx.iter_modules(model)
          if isinstance(m, Stack) and m.cfg.scan_layers}


def _scan_split(path: str, scanned: dict[str, int]) -> tuple[str, str] | None:
  """(stack layers path, the rest after it: "" or ".attn.query") when `path` lies in a scanned stack."""
  for stack in scanned:
    if path == stack or path.startswith(stack + "."):
      return stack, path[len(stack):]
  return None


def layer_count(model: nnx.Module, path: str, scanned: dict[str, int] | None = None) -> int | None:
  """L when the module at `path` lies in a scanned stack (its parameters are stacked [L, ...]), else None."""
  scanned = scanned_stacks(model) if scanned is None else scanned
  hit = _scan_split(path, scanned)
  return None if hit is None else scanned[hit[0]]


def layer_paths(path: str, scanned: dict[str, int]) -> list[str]:
  """The per-layer (unrolled) paths a module path stands for: [path], or for a module of a scanned stack
  ["decoder.layers.0.attn.query", ..., "decoder.layers.{L-1}.attn.query"]."""
  hit = _scan_split(path, scanned)
  if hit is None:
    return [path]
  stack, rest = hit
  return [f"{stack}.{i}{rest}" for i in range(scanned[stack])]


def locate(model: nnx.Module, path: str, scanned: dict[str, int] | None = None) -> tuple[str, int | None]:
  """An unrolled-style path ("decoder.layers.3.attn.query") -> (the module's path in `model`, layer index into
  its stacked parameters, or None when the model holds that layer as its own module)."""
  scanned = scanned_stacks(model) if scanned is None else scanned
  for stack, n in scanned.items():
    m = re.fullmatch(re.escape(stack) + r"\.(\d+)((\..*)?)", path)
    if m:
      if int(m[1]) >= n:
        raise ValueError(f"{path}: {stack} has {n} layers")
      return stack + m[2], int(m[1])
  return path, None


def per_layer(n_layers: int | None, build: Callable[..., Any], *modules: nnx.Module, rngs: nnx.Rngs | None = None):
  """`build(*modules[, rngs])` once (n_layers None), or for a module of a scanned stack, vmapped over its
  `n_layers` layers: `modules` (parts of the stacked Block) are sliced per layer, `rngs` split per layer, and the
  result's parameters come out stacked [L, ...] with the logical axis "layers" first, as the Block's own were
  built (models/transformer.py `Stack`). `nnx.scan` then hands each layer its slice, so a PEFT module written
  for one layer runs unchanged on scanned stacks. Modules shared by all layers (a hypernetwork, a prefix
  reparameterisation) are not built here; see `LAYER_SHARED`."""
  args = modules + ((rngs,) if rngs is not None else ())
  if n_layers is None:
    return build(*args)
  fn = nnx.vmap(lambda *a: build(*a), in_axes=(0,) * len(args), out_axes=0,
                transform_metadata={nnx.PARTITION_NAME: "layers"})
  if rngs is not None:
    fn = nnx.split_rngs(splits=n_layers)(fn)
  return fn(*args)


class LayerIndex(nnx.Variable):
  """A site's layer number where it is data: [L] (0..L-1 plus an offset) on a module of a scanned stack, so the
  scan hands each layer its own number (hypernetwork layer ids, a layer of a shared prefix
  reparameterisation). Never trained."""


def layer_index(n_layers: int, offset: int = 0, stride: int = 1) -> LayerIndex:
  """LayerIndex [L]: offset, offset + stride, ..., one number per layer of a scanned stack."""
  return LayerIndex(offset + stride * jnp.arange(n_layers, dtype=jnp.int32), sharding_names=("layers",))


def layer_value(x) -> Any:
  """An int layer id, or the value of a `LayerIndex` (a traced scalar inside the scan)."""
  return x[...] if isinstance(x, nnx.Variable) else x


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


def check_virtual_tokens(model: nnx.Module, n, what: str) -> int:
  """Validates a number of virtual tokens (prefix / prompt) against the model's positions."""
  if not isinstance(n, int) or n <= 0:
    raise ValueError(f"{what} num_tokens must be a positive integer, got {n!r}")
  mc = model.cfg
  if mc.position in ("learned", "rope") and n >= mc.max_positions:
    raise ValueError(f"{what} of {n} tokens is too long: the model allows {mc.max_positions} positions")
  return n


# ----------------------------------------------------------------------------- configs

COMMON_OPTIONS = ("name", "seed", "train_head")  # accepted by every method (`name`: named adapters)
COMPOSE_OPTIONS = ("method", "methods", "seed", "train_head")  # the keys of a compose section besides its parts


class UnknownOptionError(KeyError, ValueError):
  """An option (config key) that the PEFT section does not have; both a KeyError and a ValueError."""

  def __str__(self) -> str:
    return str(self.args[0]) if self.args else ""


def options(name: str) -> dict[str, Any]:
  """The registered options of method `name` with their defaults (a copy): every key its config may set."""
  return dict(_method(name).defaults)


def _method(name) -> Method:
  if name not in _METHODS:
    near = difflib.get_close_matches(str(name), methods(), n=3, cutoff=0.5)
    hint = f"; did you mean {', '.join(repr(n) for n in near)}?" if near else ""
    raise ValueError(f"unknown PEFT method {name!r}{hint} Available: {', '.join(methods())}")
  return _METHODS[name]


def _unknown(key: str, valid: Iterable[str], where: str) -> UnknownOptionError:
  valid = sorted(valid)
  near = difflib.get_close_matches(key, valid, n=3, cutoff=0.5)
  hint = f"; did you mean {', '.join(near)}?" if near else ""
  return UnknownOptionError(f"unknown option {key!r} {where}{hint} Valid options: {', '.join(valid)}")


def _plain(cfg) -> dict[str, Any]:
  return cfg.to_dict() if isinstance(cfg, ml_collections.ConfigDict) else dict(cfg)


def _parts(cfg, where: str = "peft") -> list[tuple[str, dict[str, Any]]]:
  """[(location, one method's options incl. "method")] of a PEFT section; checks the compose structure."""
  if cfg is None:
    return []
  if isinstance(cfg, (list, tuple)):
    return [p for i, x in enumerate(cfg) for p in _parts(x, f"{where}[{i}]")]
  if not isinstance(cfg, (dict, ml_collections.ConfigDict)):
    raise ValueError(f"{where}: a PEFT config is a dict with a 'method' key (or a list of them), got {cfg!r}")
  cfg = _plain(cfg)
  if not ("methods" in cfg and cfg.get("method") in (None, "compose")):
    if cfg.get("method") == "compose":
      raise ValueError(f"{where}: method='compose' needs methods=(part names, in the order they are attached), "
                       f"e.g. {{'method': 'compose', 'methods': ('prefix', 'adapter'), 'prefix': {{...}}}}")
    return [(where, cfg)]
  order = cfg["methods"]
  if isinstance(order, str):
    order = (order,)
  shared = {k: cfg[k] for k in ("seed", "train_head") if k in cfg}  # compose-level options every part inherits
  names = [x for x in order if isinstance(x, str)]
  if len(set(names)) != len(names):
    raise ValueError(f"{where}.methods names a part twice: {tuple(order)}; give each part its own name and "
                     f"its method inside, e.g. lora_attn={{'method': 'lora', ...}}")
  for key, value in cfg.items():
    if key in COMPOSE_OPTIONS or key in names:
      continue
    what = "part (parts must be named in methods)" if isinstance(value, (dict, ml_collections.ConfigDict)) \
        else "option"
    raise _unknown(key, list(COMPOSE_OPTIONS) + names,
                   f"in {where}, a compose section with methods={tuple(order)}: not a compose {what}")
  out = []
  for i, part in enumerate(order):
    if isinstance(part, str):
      section = cfg.get(part) or {}
      section = _plain(section) if isinstance(section, ml_collections.ConfigDict) else section
      if not isinstance(section, dict):
        raise ValueError(f"{where}.{part} must be a section of options, got {section!r}")
      section = {**shared, **section, "method": section.get("method", part)}
      if section["method"] not in _METHODS:
        raise ValueError(f"{where}.{part}: part {part!r} is not a method name, so it needs method=<one of "
                         f"{', '.join(methods())}> inside it")
      out += _parts(section, f"{where}.{part}")
    else:
      out += _parts({**shared, **_plain(part)}, f"{where}.methods[{i}]")
  return out


def _resolve(where: str, cfg: dict[str, Any]) -> tuple[Method, ml_collections.ConfigDict]:
  """(method, its options over the registered defaults); an unknown name or option is an error."""
  name = cfg.get("method")
  try:
    method = _method(name)
  except ValueError as e:
    raise ValueError(f"{where}: {e}") from None
  valid = set(method.defaults) | set(COMMON_OPTIONS) | {"method"}
  for key in cfg:
    if key not in valid:
      raise _unknown(key, valid, f"for PEFT method {name!r} (at {where}.{key})")
  return method, ml_collections.ConfigDict({**method.defaults, **cfg, "method": name})


def check_config(cfg) -> None:
  """Validates a PEFT config section without a model: every method name exists and every option is one of
  its method's registered options (an unknown option is an `UnknownOptionError`, a KeyError and a ValueError,
  naming the nearest valid options and listing them all). Values are checked by the methods, on `apply`."""
  for where, part in _parts(cfg):
    _resolve(where, part)


def option_keys(cfg) -> list[str]:
  """Every dotted key (relative to the section) that the PEFT section `cfg` may set, for its chosen method(s)."""
  check_config(cfg)
  plain = cfg if isinstance(cfg, (list, tuple)) or cfg is None else _plain(cfg)
  if isinstance(plain, dict) and "methods" in plain and plain.get("method") in (None, "compose"):
    keys = list(COMPOSE_OPTIONS)
    for part in ((plain["methods"],) if isinstance(plain["methods"], str) else plain["methods"]):
      if isinstance(part, str):
        method = (plain.get(part) or {}).get("method", part)
        keys += [part] + [f"{part}.{k}" for k in sorted({"method", *COMMON_OPTIONS, *options(method)})]
    return keys
  if isinstance(plain, dict):
    return sorted({"method", *COMMON_OPTIONS, *options(plain.get("method"))})
  return []


def check_key(cfg, key: str) -> None:
  """Raises `UnknownOptionError` (nearest valid keys, all valid keys) unless the dotted `key` (relative to the
  PEFT section, e.g. "r" or "prefix.num_tokens") is an option of `cfg`'s method(s): for `--config.peft.KEY=`."""
  valid = option_keys(cfg)
  if key not in valid:
    raise _unknown(key, valid, "in the peft section")


def _as_configs(cfg) -> list[ml_collections.ConfigDict]:
  return [ml_collections.ConfigDict(part) for _, part in _parts(cfg)]


def apply(model: nnx.Module, cfg, *, rngs: nnx.Rngs | None = None) -> nnx.Module:
  """Attaches one PEFT method or a composition (module docstring) to `model` in place and returns it.

  The whole section is validated (`check_config`) before the model changes.

  `method="full"` / `"none"` attaches nothing (full fine-tuning). Unless `train_head=False`, the task head
  (`model.head`) is made trainable, like HF peft's `modules_to_save` for classifier heads.
  """
  parts = _parts(cfg)
  configs = [ml_collections.ConfigDict(part) for _, part in parts]
  train_head = all(c.get("train_head", True) for c in configs)
  resolved = [_resolve(where, part) for where, part in parts]  # validate every method before changing the model
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
  """(trainable, total) parameter counts; a quantized frozen kernel counts its weights, not its stored bytes."""
  from lightft_jax.models.quant import quantized_kernels
  filt = trainable_filter(model)
  trainable = sum(x.size for x in jax.tree.leaves(nnx.state(model, filt)))
  total = sum(x.size for x in jax.tree.leaves(nnx.state(model, nnx.Param)))
  total += sum(math.prod(k.shape) for k in quantized_kernels(model).values())
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
