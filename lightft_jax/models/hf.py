"""Hugging Face checkpoints <-> lightft_jax Transformers (bert, roberta, gpt2, t5, llama; GGUF llama).

`from_pretrained(dir)` reads config.json + model.safetensors (or a sharded model.safetensors.index.json),
or a llama GGUF file; `save_pretrained(model, dir)` writes the same format back for `transformers`.

Both directions use one table per architecture: (our parameter path, HF tensor name, kind). Kind "linear"
transposes torch Linear [out, in] to our Dense kernel [in, out]; "copy" keeps the layout (embeddings,
norms, biases, GPT-2 Conv1D which is already [in, out]). Layer rules carry `{i}`; scanned models
(`scan_layers=True`) hold every layer of a stack in one array [L, ...], stacked/split on axis 0 here.
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

from lightft_jax.models.config import TransformerConfig, get_preset
from lightft_jax.models.gguf import gguf_tokenizer, read_gguf
from lightft_jax.models.tokenizer import Tokenizer
from lightft_jax.models.transformer import Transformer

log = logging.getLogger(__name__)

SUPPORTED_MODEL_TYPES = ("bert", "roberta", "gpt2", "llama", "t5")
_HEAD_PATHS = ("head.", "pooler.", "lm_head.")  # freshly initialised (with a notice) when not in a checkpoint
# Buffers and tied aliases some checkpoints carry; never reported as unused.
_BUFFERS = re.compile(r"(position_ids|rotary_emb\.inv_freq|attn\.(masked_)?bias|(en|de)coder\.embed_tokens\.weight)$")

Rule = tuple[str, str, str]  # (our parameter path, HF tensor name, kind: "linear" | "copy")


# ---------------------------------------------------------------------------------------------- config

_ACTIVATIONS = {"gelu": "gelu", "gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh", "relu": "relu",
                "silu": "silu", "swish": "silu"}
_ACTIVATION_NAMES = {"gelu": "gelu", "gelu_tanh": "gelu_new", "relu": "relu", "silu": "silu"}

# (HF config key, TransformerConfig field) pairs that map one to one, both directions.
_CONFIG_FIELDS = {
    "bert": (("vocab_size", "vocab_size"), ("hidden_size", "d_model"), ("num_hidden_layers", "n_layers"),
             ("num_attention_heads", "n_heads"), ("intermediate_size", "d_ff"),
             ("type_vocab_size", "type_vocab_size"), ("layer_norm_eps", "norm_eps"),
             ("pad_token_id", "pad_token_id"), ("initializer_range", "initializer_range")),
    "gpt2": (("vocab_size", "vocab_size"), ("n_embd", "d_model"), ("n_layer", "n_layers"), ("n_head", "n_heads"),
             ("n_positions", "max_positions"), ("layer_norm_epsilon", "norm_eps"),
             ("bos_token_id", "bos_token_id"), ("eos_token_id", "eos_token_id"),
             ("initializer_range", "initializer_range")),
    "llama": (("vocab_size", "vocab_size"), ("hidden_size", "d_model"), ("num_hidden_layers", "n_layers"),
              ("num_attention_heads", "n_heads"), ("num_key_value_heads", "n_kv_heads"), ("head_dim", "head_dim"),
              ("intermediate_size", "d_ff"), ("max_position_embeddings", "max_positions"),
              ("rms_norm_eps", "norm_eps"), ("mlp_bias", "mlp_bias"), ("bos_token_id", "bos_token_id"),
              ("eos_token_id", "eos_token_id"), ("initializer_range", "initializer_range")),
    "t5": (("vocab_size", "vocab_size"), ("d_model", "d_model"), ("d_kv", "head_dim"), ("d_ff", "d_ff"),
           ("num_layers", "n_layers"), ("num_decoder_layers", "n_decoder_layers"), ("num_heads", "n_heads"),
           ("relative_attention_num_buckets", "rel_buckets"),
           ("relative_attention_max_distance", "rel_max_distance"), ("layer_norm_epsilon", "norm_eps"),
           ("pad_token_id", "pad_token_id"), ("eos_token_id", "eos_token_id"),
           ("decoder_start_token_id", "decoder_start_token_id")),
}
_CONFIG_FIELDS["roberta"] = _CONFIG_FIELDS["bert"]
_BASE_PRESET = {"bert": "tiny-bert", "roberta": "roberta-base", "gpt2": "tiny-gpt2", "llama": "tiny-llama",
                "t5": "tiny-t5"}


def _activation(name: str) -> str:
  if name not in _ACTIVATIONS:
    raise ValueError(f"unsupported activation {name!r}; supported: {sorted(_ACTIVATIONS)}")
  return _ACTIVATIONS[name]


def _first(x):
  return x[0] if isinstance(x, (list, tuple)) else x


def _rope_theta(hf: dict) -> float:
  params = hf.get("rope_parameters") or hf.get("rope_scaling") or {}
  kind = params.get("rope_type", params.get("type", "default"))
  if kind != "default":
    raise ValueError(f"rope type {kind!r} is not supported; only the default (unscaled) RoPE is")
  return float(params.get("rope_theta", hf.get("rope_theta", 10000.0)))


def _derived_fields(model_type: str, hf: dict) -> dict:
  """TransformerConfig fields that are not a one-to-one copy of an HF key."""
  if model_type in ("bert", "roberta"):
    if hf.get("position_embedding_type", "absolute") != "absolute":
      raise ValueError(f"position_embedding_type={hf['position_embedding_type']!r} is not supported; "
                       "only 'absolute'")
    offset = hf.get("pad_token_id", 1) + 1 if model_type == "roberta" else 0
    return dict(activation=_activation(hf.get("hidden_act", "gelu")), position_offset=offset,
                max_positions=hf.get("max_position_embeddings", 512) - offset)
  if model_type == "gpt2":
    if hf.get("scale_attn_by_inverse_layer_idx"):
      raise ValueError("gpt2 with scale_attn_by_inverse_layer_idx=True is not supported")
    d = hf.get("n_embd", 768)
    return dict(d_ff=hf.get("n_inner") or 4 * d, activation=_activation(hf.get("activation_function", "gelu_new")),
                attn_scale=None if hf.get("scale_attn_weights", True) else 1.0,
                pad_token_id=_first(hf.get("pad_token_id") if hf.get("pad_token_id") is not None
                                    else hf.get("eos_token_id", 50256)))
  if model_type == "llama":
    bias = bool(hf.get("attention_bias", False))
    pad = hf.get("pad_token_id")
    return dict(rope_theta=_rope_theta(hf), qkv_bias=bias, out_bias=bias,
                activation=_activation(hf.get("hidden_act", "silu")),
                tie_embeddings=bool(hf.get("tie_word_embeddings", False)),
                pad_token_id=_first(pad if pad is not None else hf.get("eos_token_id", 0)))
  proj = hf.get("feed_forward_proj", "relu")
  gated = proj.startswith("gated-")
  act = "gelu_new" if proj == "gated-gelu" else proj.split("-")[-1]
  scale = hf.get("scale_decoder_outputs", hf.get("tie_word_embeddings") is not False)
  return dict(activation=_activation(act), gated_mlp=gated, scale_tied_logits=bool(scale))


def config_from_hf(hf: dict, **overrides) -> TransformerConfig:
  """HF config.json dict -> TransformerConfig (overrides win, e.g. scan_layers=True, dtype='bfloat16')."""
  model_type = hf.get("model_type")
  if model_type not in SUPPORTED_MODEL_TYPES:
    raise ValueError(f"unsupported model_type {model_type!r}; supported: {list(SUPPORTED_MODEL_TYPES)}")
  fields = {ours: _first(hf[theirs]) for theirs, ours in _CONFIG_FIELDS[model_type]
            if hf.get(theirs) is not None}
  fields.update(_derived_fields(model_type, hf))
  fields["model_type"] = model_type
  return get_preset(_BASE_PRESET[model_type]).replace(**{**fields, **overrides})


def config_to_hf(cfg: TransformerConfig) -> dict:
  """TransformerConfig -> HF config.json dict (without `architectures`)."""
  mt = cfg.model_type
  hf = {theirs: getattr(cfg, ours) for theirs, ours in _CONFIG_FIELDS[mt]}
  hf["model_type"] = mt
  act = _ACTIVATION_NAMES[cfg.activation]
  if mt in ("bert", "roberta"):
    hf.update(hidden_act=act, max_position_embeddings=cfg.max_positions + cfg.position_offset,
              position_embedding_type="absolute", hidden_dropout_prob=cfg.dropout,
              attention_probs_dropout_prob=cfg.dropout)
  elif mt == "gpt2":
    hf.update(n_inner=cfg.d_ff, activation_function=act, scale_attn_weights=cfg.attn_scale is None,
              pad_token_id=cfg.pad_token_id, resid_pdrop=cfg.dropout, embd_pdrop=cfg.dropout,
              attn_pdrop=cfg.dropout)
  elif mt == "llama":
    hf.update(num_key_value_heads=cfg.num_kv_heads, head_dim=cfg.dim_head, hidden_act=act,
              attention_bias=cfg.qkv_bias, tie_word_embeddings=cfg.tie_embeddings, pad_token_id=cfg.pad_token_id,
              rope_parameters={"rope_type": "default", "rope_theta": cfg.rope_theta}, rope_theta=cfg.rope_theta)
  else:
    hf.update(d_kv=cfg.dim_head, num_decoder_layers=cfg.num_decoder_layers, dropout_rate=cfg.dropout,
              feed_forward_proj=("gated-" if cfg.gated_mlp else "") + ("gelu" if act == "gelu_new" else act),
              tie_word_embeddings=cfg.tie_embeddings, scale_decoder_outputs=cfg.scale_tied_logits,
              is_encoder_decoder=True)
  hf["dtype"] = cfg.param_dtype
  return hf


# ---------------------------------------------------------------------------------------------- tables

def _dense(ours: str, theirs: str, bias: bool = True, kind: str = "linear") -> list[Rule]:
  bias_rule = [(f"{ours}.bias", f"{theirs}.bias", "copy")] if bias else []
  return [(f"{ours}.kernel", f"{theirs}.weight", kind)] + bias_rule


def _norm(ours: str, theirs: str, bias: bool = True) -> list[Rule]:
  bias_rule = [(f"{ours}.bias", f"{theirs}.bias", "copy")] if bias else []
  return [(f"{ours}.scale", f"{theirs}.weight", "copy")] + bias_rule


def _embed(ours: str, theirs: str) -> list[Rule]:
  return [(f"{ours}.embedding", theirs, "copy")]


def _layers(n: int, rules: list[Rule]) -> list[Rule]:
  return [(o.format(i=i), t.format(i=i), k) for i in range(n) for o, t, k in rules]


def _bert_body(c: TransformerConfig) -> list[Rule]:
  layer = (_dense("encoder.layers.{i}.attn.query", "encoder.layer.{i}.attention.self.query")
           + _dense("encoder.layers.{i}.attn.key", "encoder.layer.{i}.attention.self.key")
           + _dense("encoder.layers.{i}.attn.value", "encoder.layer.{i}.attention.self.value")
           + _dense("encoder.layers.{i}.attn.out", "encoder.layer.{i}.attention.output.dense")
           + _norm("encoder.layers.{i}.attn_norm", "encoder.layer.{i}.attention.output.LayerNorm")
           + _dense("encoder.layers.{i}.mlp.up", "encoder.layer.{i}.intermediate.dense")
           + _dense("encoder.layers.{i}.mlp.down", "encoder.layer.{i}.output.dense")
           + _norm("encoder.layers.{i}.mlp_norm", "encoder.layer.{i}.output.LayerNorm"))
  return (_embed("embed.tokens", "embeddings.word_embeddings.weight")
          + _embed("embed.positions", "embeddings.position_embeddings.weight")
          + _embed("embed.token_types", "embeddings.token_type_embeddings.weight")
          + _norm("embed.norm", "embeddings.LayerNorm") + _layers(c.n_layers, layer)
          + _dense("pooler", "pooler.dense"))


def _gpt2_body(c: TransformerConfig) -> list[Rule]:
  layer = (_norm("decoder.layers.{i}.attn_norm", "h.{i}.ln_1")
           + _dense("decoder.layers.{i}.attn.qkv", "h.{i}.attn.c_attn", kind="copy")
           + _dense("decoder.layers.{i}.attn.out", "h.{i}.attn.c_proj", kind="copy")
           + _norm("decoder.layers.{i}.mlp_norm", "h.{i}.ln_2")
           + _dense("decoder.layers.{i}.mlp.up", "h.{i}.mlp.c_fc", kind="copy")
           + _dense("decoder.layers.{i}.mlp.down", "h.{i}.mlp.c_proj", kind="copy"))
  return (_embed("embed.tokens", "wte.weight") + _embed("embed.positions", "wpe.weight")
          + _layers(c.n_layers, layer) + _norm("decoder.final_norm", "ln_f"))


def _llama_body(c: TransformerConfig) -> list[Rule]:
  a, m = c.qkv_bias, c.mlp_bias
  layer = (_norm("decoder.layers.{i}.attn_norm", "layers.{i}.input_layernorm", False)
           + _dense("decoder.layers.{i}.attn.query", "layers.{i}.self_attn.q_proj", a)
           + _dense("decoder.layers.{i}.attn.key", "layers.{i}.self_attn.k_proj", a)
           + _dense("decoder.layers.{i}.attn.value", "layers.{i}.self_attn.v_proj", a)
           + _dense("decoder.layers.{i}.attn.out", "layers.{i}.self_attn.o_proj", c.out_bias)
           + _norm("decoder.layers.{i}.mlp_norm", "layers.{i}.post_attention_layernorm", False)
           + _dense("decoder.layers.{i}.mlp.gate", "layers.{i}.mlp.gate_proj", m)
           + _dense("decoder.layers.{i}.mlp.up", "layers.{i}.mlp.up_proj", m)
           + _dense("decoder.layers.{i}.mlp.down", "layers.{i}.mlp.down_proj", m))
  return (_embed("embed.tokens", "embed_tokens.weight") + _layers(c.n_layers, layer)
          + _norm("decoder.final_norm", "norm", False))


def _t5_body(c: TransformerConfig) -> list[Rule]:
  def attn(ours, theirs):
    return sum((_dense(f"{ours}.{o}", f"{theirs}.{t}", False) for o, t in
                (("query", "q"), ("key", "k"), ("value", "v"), ("out", "o"))), [])

  def mlp(ours, theirs):
    if c.gated_mlp:
      return (_dense(f"{ours}.gate", f"{theirs}.wi_0", False) + _dense(f"{ours}.up", f"{theirs}.wi_1", False)
              + _dense(f"{ours}.down", f"{theirs}.wo", False))
    return _dense(f"{ours}.up", f"{theirs}.wi", False) + _dense(f"{ours}.down", f"{theirs}.wo", False)

  enc, dec = "encoder.layers.{i}", "decoder.layers.{i}"
  enc_layer = (attn(f"{enc}.attn", "encoder.block.{i}.layer.0.SelfAttention")
               + _norm(f"{enc}.attn_norm", "encoder.block.{i}.layer.0.layer_norm", False)
               + mlp(f"{enc}.mlp", "encoder.block.{i}.layer.1.DenseReluDense")
               + _norm(f"{enc}.mlp_norm", "encoder.block.{i}.layer.1.layer_norm", False))
  dec_layer = (attn(f"{dec}.attn", "decoder.block.{i}.layer.0.SelfAttention")
               + _norm(f"{dec}.attn_norm", "decoder.block.{i}.layer.0.layer_norm", False)
               + attn(f"{dec}.cross_attn", "decoder.block.{i}.layer.1.EncDecAttention")
               + _norm(f"{dec}.cross_attn_norm", "decoder.block.{i}.layer.1.layer_norm", False)
               + mlp(f"{dec}.mlp", "decoder.block.{i}.layer.2.DenseReluDense")
               + _norm(f"{dec}.mlp_norm", "decoder.block.{i}.layer.2.layer_norm", False))
  rel = "block.0.layer.0.SelfAttention.relative_attention_bias.weight"
  return (_embed("embed.tokens", "shared.weight")
          + _embed("encoder.rel_bias", f"encoder.{rel}") + _embed("decoder.rel_bias", f"decoder.{rel}")
          + _layers(c.n_layers, enc_layer) + _layers(c.num_decoder_layers, dec_layer)
          + _norm("encoder.final_norm", "encoder.final_layer_norm", False)
          + _norm("decoder.final_norm", "decoder.final_layer_norm", False))


_BODIES: dict[str, Callable[[TransformerConfig], list[Rule]]] = {
    "bert": _bert_body, "roberta": _bert_body, "gpt2": _gpt2_body, "llama": _llama_body, "t5": _t5_body}

_LM_HEAD = _dense("lm_head", "lm_head", False)
# (model_type, task) -> (HF class, base-model prefix in that class's checkpoints, head rules)
_CLASSES: dict[tuple[str, str], tuple[str, str, list[Rule]]] = {
    ("bert", "base"): ("BertModel", "", []),
    ("bert", "classification"): ("BertForSequenceClassification", "bert.", _dense("head.out", "classifier")),
    ("bert", "token_classification"): ("BertForTokenClassification", "bert.", _dense("head.out", "classifier")),
    ("bert", "qa"): ("BertForQuestionAnswering", "bert.", _dense("head.out", "qa_outputs")),
    ("roberta", "base"): ("RobertaModel", "", []),
    ("roberta", "classification"): ("RobertaForSequenceClassification", "roberta.", _dense("head.dense",
                                    "classifier.dense") + _dense("head.out", "classifier.out_proj")),
    ("roberta", "token_classification"): ("RobertaForTokenClassification", "roberta.",
                                          _dense("head.out", "classifier")),
    ("roberta", "qa"): ("RobertaForQuestionAnswering", "roberta.", _dense("head.out", "qa_outputs")),
    ("gpt2", "base"): ("GPT2Model", "", []),
    ("gpt2", "lm"): ("GPT2LMHeadModel", "transformer.", []),
    ("gpt2", "classification"): ("GPT2ForSequenceClassification", "transformer.", _dense("head.out", "score", False)),
    ("gpt2", "token_classification"): ("GPT2ForTokenClassification", "transformer.", _dense("head.out", "classifier")),
    ("gpt2", "qa"): ("GPT2ForQuestionAnswering", "transformer.", _dense("head.out", "qa_outputs")),
    ("llama", "base"): ("LlamaModel", "", []),
    ("llama", "lm"): ("LlamaForCausalLM", "model.", _LM_HEAD),
    ("llama", "classification"): ("LlamaForSequenceClassification", "model.", _dense("head.out", "score", False)),
    ("llama", "token_classification"): ("LlamaForTokenClassification", "model.", _dense("head.out", "score")),
    ("llama", "qa"): ("LlamaForQuestionAnswering", "transformer.", _dense("head.out", "qa_outputs")),
    ("t5", "base"): ("T5Model", "", []),
    ("t5", "lm"): ("T5ForConditionalGeneration", "", _LM_HEAD),
}
for _mt in ("bert", "roberta", "gpt2", "llama"):  # HF regression is sequence classification with one label
  _CLASSES[(_mt, "regression")] = _CLASSES[(_mt, "classification")]
_HEAD_STYLE = {"bert": "bert", "roberta": "roberta", "gpt2": "last_token", "llama": "last_token"}
_BASE_PREFIXES = ("", "bert.", "roberta.", "transformer.", "model.")


def _hf_class(model_type: str, task: str) -> tuple[str, str, list[Rule]]:
  if (model_type, task) not in _CLASSES:
    tasks = [t for m, t in _CLASSES if m == model_type]
    raise ValueError(f"task {task!r} is not supported for {model_type} checkpoints; supported: {tasks}")
  return _CLASSES[(model_type, task)]


def _rules(cfg: TransformerConfig, task: str, prefix: str) -> list[Rule]:
  """Every (our path, HF name, kind) of a model of this config/task, HF names as `prefix` + body name."""
  body = [(o, prefix + t, k) for o, t, k in _BODIES[cfg.model_type](cfg)]
  return body + _hf_class(cfg.model_type, task)[2]


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

  def read(self, name: str) -> np.ndarray:
    return np.asarray(self._read(name))

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
  if any(directory.glob("pytorch_model*.bin")):
    raise ValueError(
        f"{directory} holds a pickle checkpoint (pytorch_model*.bin) and no model.safetensors; pickle checkpoints "
        "are not loaded; convert to safetensors with `transformers`: "
        "AutoModel.from_pretrained(dir).save_pretrained(dir, safe_serialization=True)")
  found = sorted(p.name for p in directory.iterdir())
  raise FileNotFoundError(f"no weights in {directory}: expected model.safetensors or model.safetensors.index.json; "
                          f"found {found}")


def _base_prefix(ckpt: Checkpoint, body: list[Rule]) -> str:
  """Which base-model prefix ("", "bert.", "transformer.", ...) the checkpoint's body tensors carry."""
  names = ckpt.names
  for prefix in _BASE_PREFIXES:
    if sum(prefix + t in names for _, t, _ in body) > len(body) // 2:
      return prefix
  return ""


# ---------------------------------------------------------------------------------------------- load

def _params(model: nnx.Module) -> dict[str, nnx.Variable]:
  return {".".join(map(str, p)): v for p, v in nnx.iter_graph(model) if isinstance(v, nnx.Param)}


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


def _convert(x: np.ndarray, kind: str) -> np.ndarray:
  """HF layout <-> ours (the same operation both ways)."""
  return x.T if kind == "linear" else x


def load_weights(model: Transformer, ckpt: Checkpoint, prefix: str = "") -> list[str]:
  """Copies checkpoint tensors into `model` in place. Returns the parameter paths left freshly initialised.

  Raises ValueError on a shape mismatch (naming the tensor) or when body tensors are missing (a
  checkpoint of another architecture); missing heads stay initialised and are named in a warning.
  """
  params = _params(model)
  groups = _group(_rules(model.cfg, model.task, prefix), params)
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
      arrays.append(_convert(ckpt.read(theirs), kind))
      used.add(theirs)
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


def from_pretrained(directory: str | Path, task: str = "base", num_labels: int | None = None,
                    dtype: str = "float32", *, gguf_file: str | None = None, seed: int = 0,
                    **overrides) -> Transformer:
  """Builds a Transformer from a local HF checkpoint directory or a llama GGUF file.

  `task` picks the head (base, lm, classification, token_classification, qa, regression); heads the
  checkpoint lacks are freshly initialised (seeded by `seed`) with a logged warning naming them.
  `overrides` are TransformerConfig fields (scan_layers=True, param_dtype='bfloat16', remat=True, ...).
  """
  directory, gguf_path = _resolve(directory, gguf_file)
  if gguf_path is not None:
    hf, arrays = read_gguf(gguf_path)
    ckpt = Checkpoint.from_arrays(arrays)
  else:
    hf = json.loads((directory / "config.json").read_text())
    ckpt = Checkpoint.from_safetensors(_weight_files(directory))
  cfg = config_from_hf(hf, dtype=dtype, **overrides)
  _hf_class(cfg.model_type, task)  # fails early, listing the tasks this architecture supports
  prefix = _base_prefix(ckpt, _BODIES[cfg.model_type](cfg))
  names = ckpt.names
  if cfg.model_type == "t5":  # untied when the checkpoint has its own lm_head (T5 v1.1)
    cfg = cfg.replace(tie_embeddings="lm_head.weight" not in names)
  if cfg.model_type in ("bert", "roberta"):
    has_pooler = prefix + "pooler.dense.weight" in names
    cfg = cfg.replace(pooler=(has_pooler and task == "base") or (cfg.model_type == "bert" and
                                                                 task in ("classification", "regression")))
  model = Transformer(cfg, task=task, num_labels=_num_labels(hf, task, num_labels),
                      head_style=_HEAD_STYLE.get(cfg.model_type), rngs=nnx.Rngs(seed))
  load_weights(model, ckpt, prefix)
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
  hf["architectures"] = [_hf_class(cfg.model_type, task)[0]]
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
  _, prefix, _ = _hf_class(cfg.model_type, model.task)
  params = _params(model)
  tensors = {}
  for ours, src in _group(_rules(cfg, model.task, prefix), params).items():
    value = np.asarray(params[ours].get_value())
    layers = list(value) if _is_stacked(ours) else [value]
    for (theirs, kind), v in zip(src, layers):
      tensors[theirs] = jnp.asarray(np.ascontiguousarray(_convert(v, kind)))
  directory = Path(directory)
  directory.mkdir(parents=True, exist_ok=True)
  save_file(tensors, str(directory / "model.safetensors"), metadata={"format": "pt"})
  (directory / "config.json").write_text(json.dumps(_hf_config(model), indent=2, sort_keys=True))
  return directory
