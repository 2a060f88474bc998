"""HF peft adapter directories (adapter_config.json + adapter_model.safetensors) <-> our PEFT modules.

Covers LoRA (plain, rsLoRA, DoRA; Dense and embedding targets), IA3, prefix tuning and prompt tuning
(encoder-decoders included: HF peft prefixes their decoder self-attention only and prompts their encoder input).
Base-module names come from the architecture's weight rules (`lightft_jax.models.archs.get_arch`); tensor
layouts: LoRA A [r, in] / B [out, r] are our a.T / b.T, IA3 vectors are [out, 1] (or [1, in] on feed-forward
modules), prefixes are HF's `prompt_embeddings` [P, L*2*K*Dh].
A trainable task head is written as HF `modules_to_save` (HF peft does the same for classifiers).
Each method is one `HFMethod` (attached / save / load) in a table that `register_hf` extends; save_hf and
load_hf look the method up there.

Note on positions: HF peft's prefix tuning gives real tokens positions P, P+1, ... (the prefix sits in the
KV cache); ours keeps them at 0, 1, ... Pass `positions = arange(T) + P` to reproduce HF numbers.
"""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path
from typing import Callable

import jax.numpy as jnp
import numpy as np
from flax import nnx
from safetensors.numpy import load_file, save_file

from lightft_jax.models import archs, hf
from lightft_jax.peft import core, named
from lightft_jax.peft.ia3 import IA3Dense
from lightft_jax.peft.lora import LoraEmbedding, lora_modules
from lightft_jax.peft.prefix import prefix_kv, stacks
from lightft_jax.peft.prompt import soft_prompt

CONFIG_FILE, WEIGHTS_FILE = "adapter_config.json", "adapter_model.safetensors"
_TASK_TYPES = {"classification": "SEQ_CLS", "regression": "SEQ_CLS", "token_classification": "TOKEN_CLS",
               "qa": "QUESTION_ANS", "base": "FEATURE_EXTRACTION"}
_PREFIX_TARGETS = r".*layers\.\d+\.attn(\.base)?$"


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


def _methods(model) -> list[str]:
  return [t for t, m in _HF_METHODS.items() if m.attached(model)]


def _prefix_stacks(model):
  try:
    return stacks(model, _PREFIX_TARGETS)
  except ValueError:
    return {}


def _np(x) -> np.ndarray:
  return np.ascontiguousarray(np.asarray(x, np.float32))


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
  head = _save_head(model, tensors, "base_model." if method.prompt_learning else "base_model.model.")
  cfg["modules_to_save"] = head or None
  directory = Path(directory)
  directory.mkdir(parents=True, exist_ok=True)
  save_file(tensors, str(directory / WEIGHTS_FILE), metadata={"format": "pt"})
  (directory / CONFIG_FILE).write_text(json.dumps(cfg, indent=2, sort_keys=True))
  return directory


def _save_lora(model, names, adapter, tensors) -> dict:
  units, targets = [], []
  for path, m in lora_modules(model).items():
    if adapter not in m.names:
      continue
    if m.merged:
      raise ValueError(f"{path} has merged LoRA weights; unmerge before save_hf")
    theirs = names[core.unwrapped_path(path)]
    u = m.lora[adapter]
    a, b = _np(u.lora_a[...].T), _np(u.lora_b[...].T)
    key = "base_model.model." + theirs
    if isinstance(m, LoraEmbedding):
      tensors[f"{key}.lora_embedding_A"], tensors[f"{key}.lora_embedding_B"] = a, b
    else:
      tensors[f"{key}.lora_A.weight"], tensors[f"{key}.lora_B.weight"] = a, b
    if u.lora_magnitude is not None:
      tensors[f"{key}.lora_magnitude_vector"] = _np(u.lora_magnitude[...])
    units.append(u)
    targets.append(theirs)
  if not units:
    raise ValueError(f"no LoRA named {adapter!r}; attached: {list(named.adapter_names(model))}")
  spec = {(u.r, u.alpha, u.rslora, u.lora_magnitude is not None) for u in units}
  if len(spec) > 1:
    raise ValueError(f"LoRA {adapter!r} mixes ranks/alphas/rsLoRA/DoRA across modules {sorted(spec)}; HF peft "
                     "needs one setting per adapter")
  r, alpha, rslora, dora = spec.pop()
  return {"r": r, "lora_alpha": alpha, "use_rslora": rslora, "use_dora": dora, "target_modules": sorted(targets),
          "lora_dropout": float(units[0].dropout.rate) if units[0].dropout is not None else 0.0, "bias": "none",
          "fan_in_fan_out": _arch(model).conv1d, "init_lora_weights": True}


def _save_ia3(model, names, adapter, tensors) -> dict:
  targets, ff = [], []
  for p, m in nnx.iter_modules(model):
    if not isinstance(m, IA3Dense):
      continue
    theirs = names[core.unwrapped_path(core.path_str(p))]
    v = _np(m.ia3[...])
    tensors[f"base_model.model.{theirs}.ia3_l"] = v[None, :] if m.feedforward else v[:, None]
    targets.append(theirs)
    if m.feedforward:
      ff.append(theirs)
  return {"target_modules": sorted(targets), "feedforward_modules": sorted(ff),
          "fan_in_fan_out": _arch(model).conv1d, "init_ia3_weights": True}


def _submodules(model) -> int:
  """HF peft's `num_transformer_submodules`: 2 for encoder-decoder models (its SEQ_2_SEQ_LM default), else 1."""
  return 2 if model.cfg.arch == "encoder_decoder" else 1


def _prompt_learning_config(model, p: int, token_dim: int, heads: int) -> dict:
  return {"num_virtual_tokens": p, "num_layers": model.cfg.n_layers, "num_attention_heads": heads,
          "token_dim": token_dim, "num_transformer_submodules": _submodules(model)}


def _hf_prefix_layers(n: int) -> list[int]:
  """Encoder-decoders: the `prompt_embeddings` layer block that HF peft's get_prompt gives decoder layer j.

  It repeats the [P, L*2, ...] prefix to L*4 entries and reads them as (self k, self v, cross k, cross v) per
  layer, then drops the cross-attention part: decoder layer j gets block (2j mod L); encoder and cross-attention
  layers get none.
  """
  return [(2 * j) % n for j in range(n)]


def _check_seq2seq_prefix(model):
  """HF peft's encoder-decoder prefixes reach decoder self-attention only, in all L = encoder-count layers."""
  found = _prefix_stacks(model)
  if any(a.extra_kv is not None for a in found.get("encoder", [])):
    raise ValueError("HF peft prefix tuning of encoder-decoder models puts prefixes on decoder self-attention "
                     "only; this model also has encoder prefixes")
  if model.cfg.num_decoder_layers != model.cfg.n_layers:
    raise ValueError(f"HF peft prefix tuning sizes encoder-decoder prefixes by the encoder's {model.cfg.n_layers} "
                     f"layers; this decoder has {model.cfg.num_decoder_layers}")


def _save_prefix(model, names, adapter, tensors) -> dict:
  if any(getattr(m, "extra_kv", None) is not None for p, m in nnx.iter_modules(model)
         if core.path_str(p).endswith("cross_attn")):
    raise ValueError("HF peft has no prefixes on cross-attention; remove them before save_hf")
  seq2seq = model.cfg.arch == "encoder_decoder"
  if seq2seq:
    _check_seq2seq_prefix(model)
  stack = "encoder" if model.cfg.arch == "encoder" else "decoder"
  kv = prefix_kv(model, stack)  # [P, L, 2, K, Dh]
  p, n = kv.shape[:2]
  if n != model.cfg.n_layers:
    raise ValueError(f"HF peft prefix tuning covers every layer; this model has prefixes on {n} of "
                     f"{model.cfg.n_layers}")
  if seq2seq:
    kv = _to_hf_blocks(_np(kv))
  tensors["prompt_embeddings"] = _np(kv).reshape(p, -1)
  k, dh = kv.shape[3:]  # HF peft sizes prefixes of grouped-query models by the kv heads
  cfg = _prompt_learning_config(model, p, k * dh, k)
  cfg.update(prefix_projection=False, encoder_hidden_size=model.cfg.d_model)
  return cfg


def _to_hf_blocks(kv: np.ndarray) -> np.ndarray:
  """Decoder prefixes [P, L, 2, K, Dh] -> HF blocks (see _hf_prefix_layers); blocks no layer reads stay 0."""
  out, owner = np.zeros_like(kv), {}
  for j, blk in enumerate(_hf_prefix_layers(kv.shape[1])):
    if blk in owner and not np.array_equal(kv[:, owner[blk]], kv[:, j]):
      raise ValueError(f"HF peft gives decoder layers {owner[blk]} and {j} the same prefix (its get_prompt reads "
                       f"block {blk} for both when the layer count is even); this model's differ")
    owner.setdefault(blk, j)
    out[:, blk] = kv[:, j]
  return out


def _save_prompt(model, names, adapter, tensors) -> dict:
  prompt = _np(soft_prompt(model).prompt[...])
  # Encoder-decoders: HF keeps 2P rows and prepends the first P to the encoder input; its prompt-tuning forward
  # never reads the other P (the decoder half), which we fill with a copy.
  tensors["prompt_embeddings"] = np.concatenate([prompt] * _submodules(model), 0)
  cfg = _prompt_learning_config(model, prompt.shape[0], model.cfg.d_model, model.cfg.n_heads)
  cfg.update(prompt_tuning_init="RANDOM", prompt_tuning_init_text=None, tokenizer_name_or_path=None)
  return cfg


def _save_head(model, tensors, key_prefix: str) -> list[str]:
  """Writes a trainable head's tensors; returns the HF module names for `modules_to_save`."""
  head = getattr(model, "head", None)
  if head is None or not any(isinstance(v, core.TunedParam) for _, v in nnx.iter_graph(head)):
    return []
  params = {core.path_str(p): v for p, v in nnx.iter_graph(model) if isinstance(v, nnx.Param)}
  tops = set()
  for ours, theirs, kind in _head_rules(model):
    if ours in params:
      tensors[key_prefix + theirs] = _np(archs.convert(np.asarray(params[ours][...]), kind))
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


_MODULE_KEY = re.compile(r"^base_model\.model\.(.+)\.(lora_A\.weight|lora_B\.weight|lora_magnitude_vector|"
                         r"lora_embedding_A|lora_embedding_B|ia3_l)$")


def _split_keys(tensors) -> tuple[dict[str, dict[str, np.ndarray]], dict[str, np.ndarray]]:
  """({HF module: {suffix: tensor}}, other tensors)."""
  mods, rest = {}, {}
  for key, value in tensors.items():
    m = _MODULE_KEY.match(key)
    if m:
      mods.setdefault(m[1], {})[m[2]] = value
    else:
      rest[key] = value
  return mods, rest


def _our_paths(model, hf_modules) -> dict[str, str]:
  """{HF module: our module path}; error naming the modules this model does not have."""
  inverse = {v: k for k, v in module_names(model).items()}
  missing = [h for h in hf_modules if h not in inverse]
  if missing:
    raise ValueError(f"the adapter targets modules that a {model.cfg.model_type} model (task={model.task!r}) does not "
                     f"have, e.g. {missing[:4]}; was it made for another architecture? Known modules e.g. "
                     f"{sorted(inverse)[:6]}")
  return {h: inverse[h] for h in hf_modules}


def _exact(paths) -> str:
  return "^(" + "|".join(re.escape(p) for p in sorted(paths)) + ")$"


def _set(var, value: np.ndarray, what: str):
  if tuple(var.shape) != tuple(value.shape):
    raise ValueError(f"shape mismatch for {what}: the model expects {tuple(var.shape)}, the adapter has "
                     f"{tuple(value.shape)}")
  var[...] = jnp.asarray(value, var[...].dtype)


def _load_lora(model, cfg, tensors, adapter):
  for key in ("rank_pattern", "alpha_pattern"):
    if cfg.get(key):
      raise ValueError(f"LoRA adapters with a per-module {key} are not supported")
  mods, rest = _split_keys(tensors)
  if not mods:
    raise ValueError("the LoRA adapter holds no lora_A/lora_B tensors")
  ours = _our_paths(model, mods)
  r = int(cfg["r"])
  core.apply(model, {"method": "lora", "r": r, "alpha": float(cfg["lora_alpha"]),
                     "rslora": bool(cfg.get("use_rslora")), "dora": bool(cfg.get("use_dora")),
                     "targets": _exact(ours.values()), "name": adapter, "train_head": False})
  wrappers = lora_modules(model)
  for theirs, t in mods.items():
    u = wrappers[ours[theirs]].lora[adapter]
    a = t.get("lora_A.weight", t.get("lora_embedding_A"))
    b = t.get("lora_B.weight", t.get("lora_embedding_B"))
    if a is None or b is None:
      raise ValueError(f"{theirs}: the adapter lacks lora_A or lora_B")
    _set(u.lora_a, a.T, f"{theirs}.lora_A")
    _set(u.lora_b, b.T, f"{theirs}.lora_B")
    if "lora_magnitude_vector" in t:
      _set(u.lora_magnitude, t["lora_magnitude_vector"], f"{theirs}.lora_magnitude_vector")
  return rest


def _load_ia3(model, cfg, tensors, adapter):
  mods, rest = _split_keys(tensors)
  ours = _our_paths(model, mods)
  ff = [ours[h] for h in mods if _is_ff(h, cfg)]
  normal = [p for p in ours.values() if p not in ff]
  core.apply(model, {"method": "ia3", "targets": _exact(normal) if normal else None,
                     "feedforward": _exact(ff) if ff else None, "train_head": False})
  for theirs, t in mods.items():
    m = core.get_module(model, ours[theirs])
    _set(m.ia3, t["ia3_l"].reshape(-1), f"{theirs}.ia3_l")
  return rest


def _is_ff(module: str, cfg) -> bool:
  ff = cfg.get("feedforward_modules") or []
  ff = [ff] if isinstance(ff, str) else ff
  return any(module == f or module.endswith("." + f) for f in ff)


def _check_prompt_config(model, cfg, token_dim: int):
  n = cfg.get("num_transformer_submodules") or 1
  if n not in (1, 2) or (n == 2 and model.cfg.arch != "encoder_decoder"):
    raise ValueError(f"num_transformer_submodules={n} does not fit a {model.cfg.arch} model (1, or 2 for "
                     "encoder-decoders)")
  if cfg.get("token_dim") not in (None, token_dim):
    raise ValueError(f"the adapter was made for token_dim={cfg['token_dim']}, this model needs {token_dim}")


def _load_prefix(model, cfg, tensors, adapter):
  rest = dict(tensors)
  emb = rest.pop("prompt_embeddings")
  p = int(cfg["num_virtual_tokens"])
  seq2seq = model.cfg.arch == "encoder_decoder"
  stack = "encoder" if model.cfg.arch == "encoder" else "decoder"
  layers = stacks(model, _PREFIX_TARGETS)[stack]
  k, dh = layers[0].n_kv_heads, layers[0].head_dim
  _check_prompt_config(model, cfg, k * dh)
  if seq2seq:
    _check_seq2seq_prefix(model)
  if emb.shape != (p, len(layers) * 2 * k * dh):
    raise ValueError(f"prompt_embeddings has shape {emb.shape}; this model needs ({p}, {len(layers) * 2 * k * dh}) "
                     f"= (num_virtual_tokens, layers*2*kv_heads*head_dim)")
  targets = r"decoder\.layers\.\d+\.attn(\.base)?$" if seq2seq else _PREFIX_TARGETS
  core.apply(model, {"method": "prefix", "num_tokens": p, "targets": targets, "train_head": False})
  kv = emb.reshape(p, len(layers), 2, k, dh)
  blocks = _hf_prefix_layers(len(layers)) if seq2seq else range(len(layers))
  for i, (attn, blk) in enumerate(zip(layers, blocks)):
    _set(attn.extra_kv.prefix_k, kv[:, blk, 0], f"prefix keys of layer {i}")
    _set(attn.extra_kv.prefix_v, kv[:, blk, 1], f"prefix values of layer {i}")
  return rest


def _load_prompt(model, cfg, tensors, adapter):
  _check_prompt_config(model, cfg, model.cfg.d_model)
  rest = dict(tensors)
  emb = rest.pop("prompt_embeddings")
  p = int(cfg.get("num_virtual_tokens") or emb.shape[0])
  if emb.shape[0] != p * (cfg.get("num_transformer_submodules") or 1):
    raise ValueError(f"prompt_embeddings has {emb.shape[0]} rows; the config needs num_virtual_tokens * "
                     f"num_transformer_submodules = {p} * {cfg.get('num_transformer_submodules') or 1}")
  emb = emb[:p]  # HF's prompt-tuning forward prepends only the first P rows (to the encoder input)
  core.apply(model, {"method": "prompt", "num_tokens": p, "train_head": False})
  _set(soft_prompt(model).prompt, emb, "prompt_embeddings")
  return rest


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
      _set(params[ours], archs.convert(clean[theirs], kind), theirs)
      used.add(theirs)
      head_used |= ours in head
  unused = sorted(set(clean) - used)
  if unused:
    raise ValueError(f"adapter tensors that fit no module of this {model.cfg.model_type} model (task={model.task!r}): "
                     f"{unused[:6]}")
  if head_used:
    core.make_trainable(model.head)


# ---------------------------------------------------------------------------------------------- methods

def _has_prefix(model) -> bool:
  return any(a.extra_kv is not None for layers in _prefix_stacks(model).values() for a in layers)


register_hf(HFMethod("LORA", lambda model: bool(lora_modules(model)), _save_lora, _load_lora))
register_hf(HFMethod("IA3", lambda model: any(isinstance(m, IA3Dense) for _, m in nnx.iter_modules(model)),
                     _save_ia3, _load_ia3))
register_hf(HFMethod("PREFIX_TUNING", _has_prefix, _save_prefix, _load_prefix, prompt_learning=True))
register_hf(HFMethod("PROMPT_TUNING", lambda model: soft_prompt(model) is not None, _save_prompt,
                     _load_prompt, prompt_learning=True))
PEFT_TYPES = tuple(_HF_METHODS)
