"""HF peft adapter directories (adapter_config.json + adapter_model.safetensors) <-> our PEFT modules.

This module is the generic part; each method's mapping lives beside its implementation and registers itself
with `register_hf(HFMethod(...))` when its module is imported:

  LORA           peft/lora.py    plain, rsLoRA, DoRA; Dense and embedding targets
  IA3            peft/ia3.py     attention and feed-forward vectors
  PREFIX_TUNING  peft/prefix.py  encoder-decoders: decoder self-attention only, in HF's layer blocks
  PROMPT_TUNING  peft/prompt.py  encoder-decoders: the encoder input

This module imports no method; `lightft_jax.peft` imports them all, so the table is full wherever `save_hf` /
`load_hf` can be reached (importing `lightft_jax.peft.hf_io` runs `lightft_jax/peft/__init__.py` first).
A new method adds its own `register_hf` call beside its code.

What lives here: the `HFMethod` table, `save_hf` / `load_hf`, base-module names from the architecture's weight
rules (`lightft_jax.models.archs.get_arch`, which also says whether HF stores linear weights [in, out] like
GPT-2's Conv1D: HF peft's `fan_in_fan_out`), the trainable task head written as HF `modules_to_save` (HF peft
does the same for classifiers) and read back, and the helpers the methods share (tensors grouped by HF module,
shape-checked assignment, the prompt-learning config fields of prefix and prompt tuning).

Note on positions: HF peft's prefix tuning gives real tokens positions P, P+1, ... (the prefix sits in the
KV cache); ours keeps them at 0, 1, ... Pass `positions = arange(T) + P` to reproduce HF numbers.
"""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path
from typing import Callable, Iterable

import jax.numpy as jnp
import numpy as np
from flax import nnx
from safetensors.numpy import load_file, save_file

from lightft_jax.models import archs, hf
from lightft_jax.peft import core

CONFIG_FILE, WEIGHTS_FILE = "adapter_config.json", "adapter_model.safetensors"
MODEL_PREFIX = "base_model.model."  # HF peft's key prefix of tensors that belong to a module of the base model
_TASK_TYPES = {"classification": "SEQ_CLS", "regression": "SEQ_CLS", "token_classification": "TOKEN_CLS",
               "qa": "QUESTION_ANS", "base": "FEATURE_EXTRACTION"}


def _task_type(model) -> str:
  if model.task == "lm":
    return "SEQ_2_SEQ_LM" if model.cfg.arch == "encoder_decoder" else "CAUSAL_LM"
  return _TASK_TYPES[model.task]


def _arch(model) -> archs.Architecture:
  if model.cfg.model_type not in archs.MODEL_TYPES:
    raise ValueError(f"HF peft interop needs a model of type {archs.MODEL_TYPES}, got {model.cfg.model_type!r}")
  return archs.get_arch(model.cfg.model_type)


def module_names(model) -> dict[str, str]:
  """Our base-module path -> HF module name in the task class (e.g. 'bert.encoder.layer.0.attention.self.query')."""
  return _arch(model).module_names(model.cfg, model.task)


def fan_in_fan_out(model) -> bool:
  """HF peft's `fan_in_fan_out`: the HF model stores linear weights [in, out] (GPT-2 Conv1D; `Architecture.conv1d`)."""
  return _arch(model).conv1d


def _head_rules(model) -> list[archs.Rule]:
  hf.check_hf_head(model)
  return list(_arch(model).hf_class(model.task).head)


@dataclasses.dataclass(frozen=True)
class HFMethod:
  """How one of our PEFT methods maps onto an HF peft adapter directory.

  attached(model) -> bool: the model carries this method.
  save(model, names, adapter, tensors) -> dict: writes the method's tensors (HF names) into `tensors` and returns
      its adapter_config.json entries; `names` is `module_names(model)`.
  load(model, cfg, tensors, adapter) -> dict: attaches the method to `model`, fills it from `tensors` and returns
      the tensors it did not use (task heads, saved base layers).
  prompt_learning: HF peft keys `modules_to_save` as base_model.<name> (prompt learning) instead of
      base_model.model.<name>.
  """

  peft_type: str
  attached: Callable[[nnx.Module], bool]
  save: Callable[..., dict]
  load: Callable[..., dict]
  prompt_learning: bool = False


_HF_METHODS: dict[str, HFMethod] = {}


def register_hf(method: HFMethod) -> HFMethod:
  """Adds an HF peft type to save_hf / load_hf (one entry per `peft_type`)."""
  if method.peft_type in _HF_METHODS:
    raise ValueError(f"HF peft type {method.peft_type!r} registered twice")
  _HF_METHODS[method.peft_type] = method
  return method


def peft_types() -> tuple[str, ...]:
  """The registered HF peft types, in registration order."""
  return tuple(_HF_METHODS)


def __getattr__(name: str):
  if name == "PEFT_TYPES":  # was a constant; the table now fills as the method modules are imported
    return peft_types()
  raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _methods(model) -> list[str]:
  return [t for t, m in _HF_METHODS.items() if m.attached(model)]


# ---------------------------------------------------------------------------------------------- shared helpers

def to_np(x) -> np.ndarray:
  """A float32, C-contiguous numpy copy (what safetensors writes)."""
  return np.ascontiguousarray(np.asarray(x, np.float32))


def module_tensors(tensors: dict[str, np.ndarray], suffixes: Iterable[str]
                   ) -> tuple[dict[str, dict[str, np.ndarray]], dict[str, np.ndarray]]:
  """Splits `base_model.model.<HF module>.<suffix>` tensors off: ({HF module: {suffix: tensor}}, other tensors)."""
  key = re.compile(r"^" + re.escape(MODEL_PREFIX) + r"(.+)\.(" + "|".join(re.escape(s) for s in suffixes) + r")$")
  mods, rest = {}, {}
  for name, value in tensors.items():
    m = key.match(name)
    if m:
      mods.setdefault(m[1], {})[m[2]] = value
    else:
      rest[name] = value
  return mods, rest


def our_paths(model, hf_modules) -> dict[str, str]:
  """{HF module: our module path}; error naming the modules this model does not have."""
  inverse = {v: k for k, v in module_names(model).items()}
  missing = [h for h in hf_modules if h not in inverse]
  if missing:
    raise ValueError(f"the adapter targets modules that a {model.cfg.model_type} model (task={model.task!r}) does not "
                     f"have, e.g. {missing[:4]}; was it made for another architecture? Known modules e.g. "
                     f"{sorted(inverse)[:6]}")
  return {h: inverse[h] for h in hf_modules}


def exact_targets(paths) -> str:
  """A `targets` regex matching exactly these module paths."""
  return "^(" + "|".join(re.escape(p) for p in sorted(paths)) + ")$"


def assign(var, value: np.ndarray, what: str, layer: int | None = None):
  """var[...] = value (in var's dtype), or var[layer] = value for a parameter stacked over a scanned stack's
  layers; ValueError naming `what` when the shapes differ."""
  shape = tuple(var.shape) if layer is None else tuple(var.shape[1:])
  if shape != tuple(value.shape):
    raise ValueError(f"shape mismatch for {what}: the model expects {shape}, the adapter has "
                     f"{tuple(value.shape)}")
  value = jnp.asarray(value, var[...].dtype)
  var[...] = value if layer is None else var[...].at[layer].set(value)


def layers_of(path: str, scanned: dict[str, int]) -> list[tuple[str, int | None]]:
  """[(unrolled-style module path, layer index into stacked parameters or None)] a module of ours stands for:
  one pair, or L for a module of a scanned stack (HF checkpoints name every layer's module)."""
  paths = core.layer_paths(path, scanned)
  return list(zip(paths, range(len(paths)))) if len(paths) > 1 or paths[0] != path else [(path, None)]


def take(value, layer: int | None):
  """One layer's slice of a stacked value (layer None: the value itself)."""
  return value if layer is None else value[layer]


def transformer_submodules(model) -> int:
  """HF peft's `num_transformer_submodules`: 2 for encoder-decoder models (its SEQ_2_SEQ_LM default), else 1."""
  return 2 if model.cfg.arch == "encoder_decoder" else 1


def prompt_learning_config(model, p: int, token_dim: int, heads: int) -> dict:
  """The adapter_config.json entries every HF prompt-learning method (prefix, prompt tuning) has."""
  return {"num_virtual_tokens": p, "num_layers": model.cfg.n_layers, "num_attention_heads": heads,
          "token_dim": token_dim, "num_transformer_submodules": transformer_submodules(model)}


def check_prompt_learning_config(model, cfg, token_dim: int):
  """An HF prompt-learning config's num_transformer_submodules and token_dim fit `model`."""
  n = cfg.get("num_transformer_submodules") or 1
  if n not in (1, 2) or (n == 2 and model.cfg.arch != "encoder_decoder"):
    raise ValueError(f"num_transformer_submodules={n} does not fit a {model.cfg.arch} model (1, or 2 for "
                     "encoder-decoders)")
  if cfg.get("token_dim") not in (None, token_dim):
    raise ValueError(f"the adapter was made for token_dim={cfg['token_dim']}, this model needs {token_dim}")


# ---------------------------------------------------------------------------------------------- save

def save_hf(model: nnx.Module, directory, base_model_name_or_path: str | None = None,
            adapter: str = "default") -> Path:
  """Writes adapter_config.json + adapter_model.safetensors that `peft.PeftModel.from_pretrained` loads on
  the matching `transformers` model (the HF class of `model.task`). Returns the directory.

  One method per directory (HF peft's format); for LoRA, the named adapter `adapter` is written.
  """
  kinds = _methods(model)
  if len(kinds) != 1:
    raise ValueError(f"an HF peft adapter directory holds exactly one method; this model has {kinds or 'none'} "
                     f"(supported: {tuple(_HF_METHODS)})")
  method = _HF_METHODS[kinds[0]]
  names = module_names(model)
  cfg: dict = {"peft_type": method.peft_type, "task_type": _task_type(model),
               "base_model_name_or_path": base_model_name_or_path, "inference_mode": True, "revision": None}
  tensors: dict[str, np.ndarray] = {}
  cfg.update(method.save(model, names, adapter, tensors))
  head = _save_head(model, tensors, "base_model." if method.prompt_learning else MODEL_PREFIX)
  cfg["modules_to_save"] = head or None
  directory = Path(directory)
  directory.mkdir(parents=True, exist_ok=True)
  save_file(tensors, str(directory / WEIGHTS_FILE), metadata={"format": "pt"})
  (directory / CONFIG_FILE).write_text(json.dumps(cfg, indent=2, sort_keys=True))
  return directory


def _save_head(model, tensors, key_prefix: str) -> list[str]:
  """Writes a trainable head's tensors; returns the HF module names for `modules_to_save`."""
  head = getattr(model, "head", None)
  if head is None or not any(isinstance(v, core.TunedParam) for _, v in nnx.iter_graph(head)):
    return []
  params = {core.path_str(p): v for p, v in nnx.iter_graph(model) if isinstance(v, nnx.Param)}
  tops = set()
  for ours, theirs, kind in _head_rules(model):
    if ours in params:
      tensors[key_prefix + theirs] = to_np(archs.convert(np.asarray(params[ours][...]), kind))
      tops.add(theirs.split(".")[0])
  return sorted(tops)


# ---------------------------------------------------------------------------------------------- load

def load_hf(model: nnx.Module, directory, adapter: str = "default") -> nnx.Module:
  """Attaches the HF peft adapter in `directory` to `model` (in place) and returns it.

  `model` is our Transformer for the same architecture and task as the HF base model (e.g. from
  `lightft_jax.models.from_pretrained`). Raises ValueError when the adapter's modules or shapes do not fit.
  """
  directory = Path(directory)
  if not (directory / CONFIG_FILE).exists() or not (directory / WEIGHTS_FILE).exists():
    raise FileNotFoundError(f"{directory} needs {CONFIG_FILE} and {WEIGHTS_FILE} (a HF peft adapter directory)")
  cfg = json.loads((directory / CONFIG_FILE).read_text())
  tensors = load_file(str(directory / WEIGHTS_FILE))
  kind = cfg.get("peft_type")
  if kind not in _HF_METHODS:
    raise ValueError(f"peft_type {kind!r} is not supported; supported: {tuple(_HF_METHODS)}")
  rest = _HF_METHODS[kind].load(model, cfg, tensors, adapter)
  _load_head(model, rest)
  return model


def _load_head(model, rest: dict[str, np.ndarray]):
  """Task-head tensors (HF modules_to_save, made trainable) and saved base layers (e.g. the embeddings HF peft
  stores beside an embedding LoRA) into their parameters."""
  if not rest:
    return
  clean = {re.sub(r"^base_model\.(model\.)?", "", k).replace(".modules_to_save", "").replace(".base_layer", ""): v
           for k, v in rest.items()}
  params = {core.unwrapped_path(core.path_str(p)): v for p, v in nnx.iter_graph(model) if isinstance(v, nnx.Param)}
  head = {ours for ours, _, _ in _head_rules(model)}
  used, head_used = set(), False
  for ours, theirs, kind in _arch(model).rules(model.cfg, model.task):
    if theirs in clean and ours in params:
      assign(params[ours], archs.convert(clean[theirs], kind), theirs)
      used.add(theirs)
      head_used |= ours in head
  unused = sorted(set(clean) - used)
  if unused:
    raise ValueError(f"adapter tensors that fit no module of this {model.cfg.model_type} model (task={model.task!r}): "
                     f"{unused[:6]}")
  if head_used:
    core.make_trainable(model.head)
