"""llama.cpp GGUF files (llama architecture): weights, config and tokenizer.

`read_gguf(path)` dequantizes every tensor with `gguf.quants.dequantize`, renames it to the Hugging
Face llama name (torch layout [out, in]), undoes llama.cpp's RoPE permutation of the q/k projections,
and turns the `llama.*` metadata into an HF-style config dict, so `hf.from_pretrained` loads it through
the same table as a safetensors llama. With `keep="int8"` ("q4_1") the Q8_0 (Q4_1 / Q4_0) attention / MLP
projections stay as their blocks (`quant.GGUFBlocks`), which `from_pretrained(..., quantize=...)` keeps as they are.
`gguf_tokenizer(path)` rebuilds the byte-level BPE tokenizer.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

import gguf
import numpy as np
from tokenizers import AddedToken, Regex, decoders, models, pre_tokenizers, processors
from tokenizers import Tokenizer as _HFTokenizer

from lightft_jax.models.quant import GGUFBlocks, pack_nibbles
from lightft_jax.models.tokenizer import Tokenizer

SUPPORTED_ARCHITECTURES = ("llama",)

# llama.* metadata key -> HF LlamaConfig key
_CONFIG_KEYS = (("context_length", "max_position_embeddings"), ("embedding_length", "hidden_size"),
                ("block_count", "num_hidden_layers"), ("feed_forward_length", "intermediate_size"),
                ("attention.head_count", "num_attention_heads"), ("attention.head_count_kv", "num_key_value_heads"),
                ("attention.key_length", "head_dim"), ("rope.freq_base", "rope_theta"),
                ("attention.layer_norm_rms_epsilon", "rms_norm_eps"), ("vocab_size", "vocab_size"))
_TOKEN_IDS = (("bos_token_id", "bos_token_id"), ("eos_token_id", "eos_token_id"),
              ("padding_token_id", "pad_token_id"))

# GGUF tensor name -> HF llama name ("{i}" is the layer)
_TENSOR_NAMES = {
    "token_embd.weight": "embed_tokens.weight", "output_norm.weight": "norm.weight", "output.weight": "lm_head.weight",
    "blk.{i}.attn_norm.weight": "layers.{i}.input_layernorm.weight",
    "blk.{i}.attn_q.weight": "layers.{i}.self_attn.q_proj.weight",
    "blk.{i}.attn_k.weight": "layers.{i}.self_attn.k_proj.weight",
    "blk.{i}.attn_v.weight": "layers.{i}.self_attn.v_proj.weight",
    "blk.{i}.attn_output.weight": "layers.{i}.self_attn.o_proj.weight",
    "blk.{i}.ffn_norm.weight": "layers.{i}.post_attention_layernorm.weight",
    "blk.{i}.ffn_gate.weight": "layers.{i}.mlp.gate_proj.weight",
    "blk.{i}.ffn_up.weight": "layers.{i}.mlp.up_proj.weight",
    "blk.{i}.ffn_down.weight": "layers.{i}.mlp.down_proj.weight",
}

# tokenizer.ggml.pre values whose merges were learned on the Llama-3 split (others use GPT-2's).
_LLAMA3_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
                 r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
_PRE_SPLITS = {"llama3": _LLAMA3_SPLIT, "llama-v3": _LLAMA3_SPLIT, "llama-bpe": _LLAMA3_SPLIT,
               "smaug-bpe": _LLAMA3_SPLIT, "dbrx": _LLAMA3_SPLIT}
_CONTROL, _USER_DEFINED = 3, 4  # llama.cpp token types


def _metadata(reader: gguf.GGUFReader) -> dict:
  """Scalar and string fields as python values; arrays as lists."""
  return {k: f.contents() for k, f in reader.fields.items()}


@functools.lru_cache(maxsize=2)
def _open(path: str, mtime_ns: int) -> gguf.GGUFReader:
  """Parsing the header of a GGUF takes seconds; weights and tokenizer share one (memory-mapped) reader."""
  return gguf.GGUFReader(path)


def _reader(path: Path) -> gguf.GGUFReader:
  if not Path(path).is_file():
    raise FileNotFoundError(f"no GGUF file at {path}")
  try:
    reader = _open(str(Path(path).resolve()), Path(path).stat().st_mtime_ns)
  except ValueError as e:
    raise ValueError(f"{path} is not a readable GGUF file: {e}") from e
  arch = reader.fields["general.architecture"].contents()
  if arch not in SUPPORTED_ARCHITECTURES:
    raise ValueError(f"GGUF architecture {arch!r} is not supported; supported: {list(SUPPORTED_ARCHITECTURES)}")
  return reader


def unpermute_rope(w: np.ndarray, n_heads: int) -> np.ndarray:
  """Undoes llama.cpp's q/k row permutation: w [n_heads*Dh, D] interleaved pairs -> HF rotate-half halves."""
  dh2 = w.shape[0] // n_heads // 2
  return w.reshape(n_heads, dh2, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def _hf_name(name: str) -> str | None:
  m = re.match(r"^blk\.(\d+)\.(.*)$", name)
  key = f"blk.{{i}}.{m[2]}" if m else name
  return _TENSOR_NAMES[key].format(i=m[1] if m else "") if key in _TENSOR_NAMES else None


def gguf_config(meta: dict) -> dict:
  """GGUF metadata -> HF LlamaConfig-style dict (tied embeddings decided by the caller)."""
  hf = {"model_type": "llama"}
  for key, theirs in _CONFIG_KEYS:
    if f"llama.{key}" in meta:
      hf[theirs] = meta[f"llama.{key}"]
  for key, theirs in _TOKEN_IDS:
    if f"tokenizer.ggml.{key}" in meta:
      hf[theirs] = meta[f"tokenizer.ggml.{key}"]
  hf.setdefault("vocab_size", len(meta.get("tokenizer.ggml.tokens", ())))
  return hf


_PROJECTION = re.compile(r"^layers\.\d+\.(self_attn|mlp)\.\w+_proj\.weight$")


def gguf_blocks(t) -> GGUFBlocks | None:
  """The blocks of a Q8_0, Q4_1 or Q4_0 ReaderTensor as stored, without a float copy (None for other types).

  Q8_0 rows: 34-byte blocks (float16 d, 32 int8 codes). Q4_1: 20 bytes (float16 d, float16 m, 16 bytes whose
  low nibbles hold elements 0..15 and high nibbles 16..31), w = q * d + m. Q4_0: 18 bytes (d, 16 bytes),
  w = (q - 8) * d, kept as Q4_1 with m = -8 d (exact in float16). The 4-bit codes are re-packed into
  `quant.pack_nibbles` order (a uint8 shuffle)."""
  n_in, kind = int(t.shape[0]), t.tensor_type
  raw = np.ascontiguousarray(np.asarray(t.data, np.uint8))
  f16 = lambda b: np.ascontiguousarray(b).view(np.float16)[..., 0]
  if kind == gguf.GGMLQuantizationType.Q8_0:
    raw = raw.reshape(-1, n_in // 32, 34)
    return GGUFBlocks("int8", np.ascontiguousarray(raw[..., 2:]).view(np.int8), f16(raw[..., :2]))
  if kind not in (gguf.GGMLQuantizationType.Q4_1, gguf.GGMLQuantizationType.Q4_0):
    return None
  q4_1 = kind == gguf.GGMLQuantizationType.Q4_1
  raw = raw.reshape(-1, n_in // 32, 20 if q4_1 else 18)
  d, qs = f16(raw[..., :2]), raw[..., 4 if q4_1 else 2:]
  m = f16(raw[..., 2:4]) if q4_1 else (d * np.float16(-8)).astype(np.float16)
  q = np.concatenate([qs & 15, qs >> 4], -1)  # elements 0..31 of each block
  return GGUFBlocks("q4_1", np.ascontiguousarray(pack_nibbles(q)), d, m)


def read_gguf(path: str | Path, keep: str | None = None) -> tuple[dict, dict[str, np.ndarray | GGUFBlocks]]:
  """(HF-style config dict, {HF llama tensor name: float32 array in torch layout}) of a llama GGUF.

  keep: a quantization scheme ("int8" | "q4_1"): attention and MLP projections stored in that scheme's GGUF
  types (int8: Q8_0; q4_1: Q4_1, Q4_0) are GGUFBlocks (rows in the same order) instead of float arrays."""
  reader = _reader(Path(path))
  hf = gguf_config(_metadata(reader))
  heads = {"q_proj": hf["num_attention_heads"], "k_proj": hf.get("num_key_value_heads", hf["num_attention_heads"])}
  arrays, unknown = {}, []
  for t in reader.tensors:
    name = _hf_name(t.name)
    if name is None:
      unknown.append(t.name)
      continue
    w = gguf_blocks(t) if keep and _PROJECTION.match(name) else None
    if w is None or w.scheme != keep:
      w = np.asarray(gguf.quants.dequantize(t.data, t.tensor_type), np.float32)
    proj = name.split(".")[-2]
    if proj in heads:
      w = (w.rows(unpermute_rope(np.arange(w.shape[0]), heads[proj])) if isinstance(w, GGUFBlocks)
           else unpermute_rope(w, heads[proj]))
    arrays[name] = w
  if unknown:
    raise ValueError(f"GGUF tensors with no llama mapping: {unknown[:8]}")
  hf["tie_word_embeddings"] = "lm_head.weight" not in arrays
  return hf, arrays


def gguf_tokenizer(path: str | Path) -> Tokenizer:
  """Byte-level BPE tokenizer (GPT-2 style, as in SmolLM2) from `tokenizer.ggml.*` metadata."""
  meta = _metadata(_reader(Path(path)))
  kind = meta.get("tokenizer.ggml.model")
  if kind != "gpt2":
    raise ValueError(f"GGUF tokenizer model {kind!r} is not supported; supported: ['gpt2'] (byte-level BPE)")
  tokens = list(meta["tokenizer.ggml.tokens"])
  merges = [tuple(m.split(" ")) for m in meta["tokenizer.ggml.merges"]]
  tok = _HFTokenizer(models.BPE(vocab={t: i for i, t in enumerate(tokens)}, merges=merges, fuse_unk=False))
  split = _PRE_SPLITS.get(meta.get("tokenizer.ggml.pre"))
  tok.pre_tokenizer = (pre_tokenizers.ByteLevel(add_prefix_space=False) if split is None else
                       pre_tokenizers.Sequence([pre_tokenizers.Split(Regex(split), behavior="isolated"),
                                                pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)]))
  tok.decoder = decoders.ByteLevel()
  alphabet = set(pre_tokenizers.ByteLevel.alphabet())
  types = list(meta.get("tokenizer.ggml.token_type", ()))
  tok.add_special_tokens([AddedToken(t, normalized=False, special=True) for t, ty in zip(tokens, types)
                          if ty == _CONTROL and set(t) <= alphabet])
  tok.add_tokens([AddedToken(t, normalized=False, special=False) for t, ty in zip(tokens, types)
                  if ty == _USER_DEFINED])
  ids = {theirs: meta.get(f"tokenizer.ggml.{key}") for key, theirs in _TOKEN_IDS}
  if meta.get("tokenizer.ggml.add_bos_token") and ids["bos_token_id"] is not None:
    bos = tokens[ids["bos_token_id"]]
    tok.post_processor = processors.TemplateProcessing(single=f"{bos} $A", pair=f"{bos} $A {bos} $B",
                                                       special_tokens=[(bos, ids["bos_token_id"])])
  pad = ids["pad_token_id"] if ids["pad_token_id"] is not None else ids["eos_token_id"]
  return Tokenizer(tok, pad_token_id=pad or 0, bos_token_id=ids["bos_token_id"], eos_token_id=ids["eos_token_id"])
