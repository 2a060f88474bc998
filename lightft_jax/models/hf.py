"""Hugging Face checkpoints <-> lightft_jax Transformers, for every architecture in `lightft_jax.models.archs`.

`from_pretrained(dir)` reads config.json + model.safetensors (or a sharded model.safetensors.index.json),
or a llama GGUF file; `save_pretrained(model, dir)` writes the same format back for `transformers`.

This module is the architecture-independent machinery; what differs per architecture (config mapping,
weight rules (our parameter path, HF tensor name, kind), HF class per task) comes from
`archs.get_arch(model_type)`. Kind "linear" transposes torch Linear [out, in] to our Dense kernel [in, out];
"copy" keeps the layout. Scanned models (`scan_layers=True`) hold every layer of a stack in one array
[L, ...], stacked/split on axis 0 here.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Callable

import jax.numpy as jnp
import numpy as np
from flax import nnx
from safetensors import safe_open
from safetensors.flax import save_file

from lightft_jax.models import archs
from lightft_jax.models.archs.base import Rule, convert, first
from lightft_jax.models.config import TransformerConfig, get_preset
from lightft_jax.models.gguf import gguf_tokenizer, read_gguf
from lightft_jax.models.quant import GGUFBlocks, QuantizedKernel, check_scheme, quantize_model
from lightft_jax.models.tokenizer import Tokenizer
from lightft_jax.models.transformer import Transformer

log = logging.getLogger(__name__)

SUPPORTED_MODEL_TYPES = archs.MODEL_TYPES
_HEAD_PATHS = ("head.", "pooler.", "lm_head.")  # freshly initialised (with a notice) when not in a checkpoint
# Buffers and tied aliases some checkpoints carry; never reported as unused.
_BUFFERS = re.compile(r"(position_ids|rotary_emb\.inv_freq|attn\.(masked_)?bias|(en|de)coder\.embed_tokens\.weight)$")


# ---------------------------------------------------------------------------------------------- config

def config_from_hf(hf: dict, **overrides) -> TransformerConfig:
  """HF config.json dict -> TransformerConfig (overrides win, e.g. scan_layers=True, dtype='bfloat16')."""
  arch = archs.get_arch(hf.get("model_type"))
  fields = {ours: first(hf[theirs]) for theirs, ours in arch.config_fields if hf.get(theirs) is not None}
  fields.update(arch.from_hf(hf))
  fields["model_type"] = arch.model_type
  return get_preset(arch.base_preset).replace(**{**fields, **overrides})


def config_to_hf(cfg: TransformerConfig) -> dict:
  """TransformerConfig -> HF config.json dict (without `architectures`)."""
  arch = archs.get_arch(cfg.model_type)
  hf = {theirs: getattr(cfg, ours) for theirs, ours in arch.config_fields}
  hf["model_type"] = arch.model_type
  hf.update(arch.to_hf(cfg))
  hf["dtype"] = cfg.param_dtype
  return hf


# ---------------------------------------------------------------------------------------------- tensors

class Checkpoint:
  """Read-only view of the tensors of a checkpoint: `names`, `shape(name)`, `read(name)` -> numpy."""

  def __init__(self, shapes: dict[str, tuple[int, ...]], read: Callable[[str], np.ndarray]):
    self.shapes, self._read = shapes, read

  @property
  def names(self) -> set[str]:
    return set(self.shapes)

  def shape(self, name: str) -> tuple[int, ...]:
    return self.shapes[name]

  def read(self, name: str) -> np.ndarray | GGUFBlocks:
    value = self._read(name)
    return value if isinstance(value, GGUFBlocks) else np.asarray(value)

  @classmethod
  def from_safetensors(cls, files: list[Path]) -> "Checkpoint":
    handles, where, shapes = {}, {}, {}
    for f in files:
      handles[f] = h = safe_open(str(f), framework="flax")
      for name in h.keys():
        where[name], shapes[name] = f, tuple(h.get_slice(name).get_shape())
    return cls(shapes, lambda name: handles[where[name]].get_tensor(name))

  @classmethod
  def from_arrays(cls, arrays: dict[str, np.ndarray]) -> "Checkpoint":
    return cls({k: tuple(v.shape) for k, v in arrays.items()}, arrays.__getitem__)


def conversion_command(directory: str | Path) -> str:
  """The shell command that rewrites a pytorch_model.bin checkpoint directory as model.safetensors in place."""
  d = json.dumps(str(directory))
  return (f"python -c 'from transformers import AutoModel; AutoModel.from_pretrained({d})"
          f".save_pretrained({d}, safe_serialization=True)'")


def _weight_files(directory: Path) -> list[Path]:
  index = directory / "model.safetensors.index.json"
  if (directory / "model.safetensors").exists():
    return [directory / "model.safetensors"]
  if index.exists():
    weight_map = json.loads(index.read_text())["weight_map"]
    files = [directory / f for f in dict.fromkeys(weight_map.values())]
    missing = [f.name for f in files if not f.exists()]
    if missing:
      raise FileNotFoundError(f"{index} lists shards that are not in {directory}: {missing}")
    return files
  if any(directory.glob("pytorch_model*.bin")):  # never opened: unpickling runs arbitrary code
    raise ValueError(
        f"{directory} holds a pickle checkpoint (pytorch_model*.bin) and no model.safetensors; pickle checkpoints "
        f"are not loaded; convert to safetensors once (needs torch + transformers; the task head, if any, is "
        f"kept by the Auto class of the checkpoint's task, e.g. AutoModelForSequenceClassification):\n"
        f"  {conversion_command(directory)}")
  found = sorted(p.name for p in directory.iterdir())
  raise FileNotFoundError(f"no weights in {directory}: expected model.safetensors or model.safetensors.index.json; "
                          f"found {found}")


def _base_prefix(ckpt: Checkpoint, body: list[Rule]) -> str:
  """Which base-model prefix ("", "bert.", "transformer.", ...) the checkpoint's body tensors carry."""
  names = ckpt.names
  for prefix in archs.base_prefixes():
    if sum(prefix + t in names for _, t, _ in body) > len(body) // 2:
      return prefix
  return ""


# ---------------------------------------------------------------------------------------------- load

def _params(model: nnx.Module) -> dict[str, nnx.Variable]:
  """Parameter path -> Param; a quantized Dense kernel (QuantizedKernel: reads dequantized, writes
  re-quantize) stands at its Param's path."""
  return {".".join(map(str, p)): v for p, v in nnx.iter_graph(model) if isinstance(v, (nnx.Param, QuantizedKernel))}


def _scanned_name(name: str) -> str:
  """'decoder.layers.3.attn.out.kernel' -> 'decoder.layers.attn.out.kernel' (the path in a scanned stack)."""
  return re.sub(r"\.layers\.\d+\.", ".layers.", name)


def _is_stacked(name: str) -> bool:
  """True for a scanned stack's parameter, which holds all layers on a leading axis."""
  return ".layers." in name and not re.search(r"\.layers\.\d+\.", name)


def _group(rules: list[Rule], params: dict[str, nnx.Variable]) -> dict[str, list[tuple[str, str]]]:
  """Our parameter name -> [(HF name, kind)], one per layer (in order) for a scanned stack."""
  groups: dict[str, list[tuple[str, str]]] = {}
  for ours, theirs, kind in rules:
    if ours not in params:
      ours = _scanned_name(ours)
    if ours in params:
      groups.setdefault(ours, []).append((theirs, kind))
  return groups


def load_weights(model: Transformer, ckpt: Checkpoint, prefix: str = "") -> list[str]:
  """Copies checkpoint tensors into `model` in place. Returns the parameter paths left freshly initialised.

  Raises ValueError on a shape mismatch (naming the tensor) or when body tensors are missing (a
  checkpoint of another architecture); missing heads stay initialised and are named in a warning.
  """
  params = _params(model)
  groups = _group(archs.get_arch(model.cfg.model_type).rules(model.cfg, model.task, prefix), params)
  missing_body = [t for ours, src in groups.items() for t, _ in src
                  if t not in ckpt.names and not ours.startswith(_HEAD_PATHS)]
  if missing_body:
    sample = sorted(ckpt.names)[:6]
    raise ValueError(f"the checkpoint does not match a {model.cfg.model_type} model: {len(missing_body)} expected "
                     f"tensors are missing, e.g. {missing_body[:4]}; it holds e.g. {sample}. Is it a checkpoint "
                     "of another architecture (check model_type in config.json)?")
  fresh = sorted(set(params) - set(groups))
  used = set()
  for ours, src in groups.items():
    if any(t not in ckpt.names for t, _ in src):
      fresh.append(ours)
      continue
    var = params[ours]
    stacked = _is_stacked(ours)
    expected = tuple(var.shape[1:]) if stacked else tuple(var.shape)
    arrays = []
    for theirs, kind in src:
      hf_expected = expected[::-1] if kind == "linear" else expected
      if ckpt.shape(theirs) != hf_expected:
        raise ValueError(f"shape mismatch for {theirs!r} (-> {ours}): the config implies {hf_expected}, "
                         f"the checkpoint holds {ckpt.shape(theirs)}")
      value = ckpt.read(theirs)
      if isinstance(value, GGUFBlocks) and not (kind == "linear" and isinstance(var, QuantizedKernel)):
        value = value.dequantize()
      arrays.append(value if isinstance(value, GGUFBlocks) else convert(value, kind))
      used.add(theirs)
    if isinstance(arrays[0], GGUFBlocks):  # GGUF blocks become the quantized kernel as they are
      var.set_blocks(arrays[0] if not stacked else GGUFBlocks(
          arrays[0].scheme, *(None if a[0] is None else np.stack(a)
                              for a in zip(*((b.codes, b.scale, b.minimum) for b in arrays)))))
      continue
    value = np.stack(arrays) if stacked else arrays[0]
    var.set_value(jnp.asarray(value, dtype=var.dtype))
  if fresh:
    log.warning("not in the checkpoint, freshly initialised: %s", ", ".join(sorted(set(fresh))))
  unused = sorted(n for n in ckpt.names - used if not _BUFFERS.search(n))
  if unused:
    log.warning("checkpoint tensors not used by this %s model (task=%r): %s", model.cfg.model_type, model.task,
                ", ".join(unused[:20]) + (" ..." if len(unused) > 20 else ""))
  return sorted(set(fresh))


def _num_labels(hf: dict, task: str, num_labels: int | None) -> int | None:
  if num_labels is not None or task not in ("classification", "token_classification"):
    return num_labels
  return len(hf["id2label"]) if hf.get("id2label") else hf.get("num_labels")


def _resolve(path: str | Path, gguf_file: str | None) -> tuple[Path, Path | None]:
  """(directory, gguf path or None), with clear errors for what is missing."""
  path = Path(path)
  if not path.exists():
    raise FileNotFoundError(f"no such checkpoint directory or file: {path}")
  if path.is_file():
    if path.suffix != ".gguf":
      raise ValueError(f"{path} is a file; pass a Hugging Face checkpoint directory or a .gguf file")
    return path.parent, path
  if gguf_file is not None:
    if not (path / gguf_file).exists():
      raise FileNotFoundError(f"no GGUF file {gguf_file!r} in {path}")
    return path, path / gguf_file
  if not (path / "config.json").exists():
    ggufs = sorted(p.name for p in path.glob("*.gguf"))
    hint = f"; for a GGUF file pass gguf_file= one of {ggufs}" if ggufs else ""
    raise FileNotFoundError(f"{path} has no config.json; expected a Hugging Face checkpoint directory "
                            f"(config.json + model.safetensors){hint}")
  return path, None


def check_hf_head(model: Transformer) -> None:
  """Raises ValueError when the model's classification pooling is not the one its HF class uses."""
  style = getattr(getattr(model, "head", None), "style", None)
  own = archs.get_arch(model.cfg.model_type).head_style
  if style is not None and own is not None and style != own:
    raise ValueError(f"head style {style!r} has no Hugging Face {model.cfg.model_type} class (it pools with "
                     f"{own!r}); this model cannot be exported to HF")


def from_pretrained(directory: str | Path, task: str = "base", num_labels: int | None = None,
                    dtype: str = "float32", *, gguf_file: str | None = None, seed: int = 0,
                    head_style: str | None = None, quantize: str | None = None, double_quant: bool | None = None,
                    quantize_block_size: int = 64, **overrides) -> Transformer:
  """Builds a Transformer from a local HF checkpoint directory or a llama GGUF file.

  Like `transformers`, returns the model in eval mode (dropout off); the trainer switches it to train mode.
  Dropout comes from config.json: `dropout` on hidden states (BERT hidden_dropout_prob, GPT-2 resid_pdrop,
  T5 dropout_rate; Llama has none) and `attention_dropout` on attention probabilities (BERT
  attention_probs_dropout_prob, GPT-2 attn_pdrop, T5 dropout_rate, Llama attention_dropout), unless `overrides`
  set them.
  `task` picks the head (base, lm, classification, token_classification, qa, regression); heads the
  checkpoint lacks are freshly initialised (seeded by `seed`) with a logged warning naming them.
  `head_style` (models.heads.HEAD_STYLES) replaces the architecture's own sequence-classification pooling,
  e.g. "mean" for sentence-transformers encoders; such a model cannot be saved back as an HF checkpoint.
  `overrides` are TransformerConfig fields (scan_layers=True, param_dtype='bfloat16', remat=True, ...).
  `quantize` ("int8" | "nf4" | "q4_1") keeps the projections inside the blocks as frozen blockwise-quantized kernels
  (models/quant.py; `quantize_block_size` values per block, `double_quant` of the block scales, default on for
  nf4; "q4_1": 4-bit affine blocks); a GGUF file's projections stored in the chosen scheme's GGUF types become
  quantized kernels as they are, without a float copy (int8: Q8_0; q4_1: Q4_1 and Q4_0; block 32).
  """
  check_scheme(quantize)
  directory, gguf_path = _resolve(directory, gguf_file)
  if gguf_path is not None:
    hf, arrays = read_gguf(gguf_path, keep=quantize)
    ckpt = Checkpoint.from_arrays(arrays)
  else:
    hf = json.loads((directory / "config.json").read_text())
    ckpt = Checkpoint.from_safetensors(_weight_files(directory))
  cfg = config_from_hf(hf, dtype=dtype, **overrides)
  arch = archs.get_arch(cfg.model_type)
  arch.hf_class(task)  # fails early, listing the tasks this architecture supports
  prefix = _base_prefix(ckpt, arch.body(cfg))
  head_style = head_style or arch.head_style
  cfg = cfg.replace(**arch.checkpoint_fields(cfg, task, ckpt.names, prefix, head_style))
  model = Transformer(cfg, task=task, num_labels=_num_labels(hf, task, num_labels), head_style=head_style,
                      rngs=nnx.Rngs(seed))
  # Quantized before loading, so each checkpoint tensor is quantized as it is read (no second float model).
  quantize_model(model, quantize, block_size=quantize_block_size, double_quant=double_quant)
  load_weights(model, ckpt, prefix)
  model.eval()  # dropout (now read from config.json) stays off until a trainer asks for train mode
  return model


def load_tokenizer(directory: str | Path, *, gguf_file: str | None = None) -> Tokenizer:
  """The tokenizer of a checkpoint: tokenizer.json in an HF directory, or the vocabulary of a GGUF file."""
  path = Path(directory)
  if path.suffix == ".gguf" or gguf_file is not None:
    _, gguf_path = _resolve(path, gguf_file)
    return gguf_tokenizer(gguf_path)
  return Tokenizer.from_file(path)


# ---------------------------------------------------------------------------------------------- save

def _hf_config(model: Transformer) -> dict:
  cfg, task = model.cfg, model.task
  hf = config_to_hf(cfg)
  hf["architectures"] = [archs.get_arch(cfg.model_type).hf_class(task).name]
  if model.head is not None and task != "qa":
    n = model.head.out.d_out
    hf["id2label"] = {str(i): f"LABEL_{i}" for i in range(n)}
    hf["label2id"] = {f"LABEL_{i}": i for i in range(n)}
    if task == "regression":
      hf["problem_type"] = "regression"
  return hf


def save_pretrained(model: Transformer, directory: str | Path) -> Path:
  """Writes config.json + model.safetensors that `transformers` AutoModel* classes load.

  The HF class (written to `architectures`) follows the model's task: base -> BertModel/GPT2Model/...,
  lm -> GPT2LMHeadModel/LlamaForCausalLM/T5ForConditionalGeneration, classification ->
  *ForSequenceClassification, token_classification, qa. Returns the directory.
  """
  cfg = model.cfg
  if cfg.model_type not in SUPPORTED_MODEL_TYPES:
    raise ValueError(f"cannot save model_type {cfg.model_type!r} as a Hugging Face checkpoint; supported: "
                     f"{list(SUPPORTED_MODEL_TYPES)}")
  check_hf_head(model)
  rules = archs.get_arch(cfg.model_type).rules(cfg, model.task)
  params = _params(model)
  tensors = {}
  for ours, src in _group(rules, params).items():
    value = np.asarray(params[ours].get_value())
    layers = list(value) if _is_stacked(ours) else [value]
    for (theirs, kind), v in zip(src, layers):
      tensors[theirs] = jnp.asarray(np.ascontiguousarray(convert(v, kind)))
  directory = Path(directory)
  directory.mkdir(parents=True, exist_ok=True)
  save_file(tensors, str(directory / "model.safetensors"), metadata={"format": "pt"})
  (directory / "config.json").write_text(json.dumps(_hf_config(model), indent=2, sort_keys=True))
  return directory
