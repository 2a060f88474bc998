"""Tokenization with the `tokenizers` library: load tokenizer.json, batch encode with padding/truncation."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer as _HFTokenizer


class Tokenizer:
  """Thin wrapper over `tokenizers.Tokenizer` that returns numpy batches.

  `encode_batch(texts, max_length=..., padding="longest"|"max_length", side="right"|"left")` returns
  {"input_ids": int32 [B,T], "attention_mask": int32 [B,T]} (+ "token_type_ids" for sentence pairs).
  """

  def __init__(self, tok: _HFTokenizer, *, pad_token_id: int = 0, bos_token_id: int | None = None,
               eos_token_id: int | None = None, add_special_tokens: bool = True):
    self.tok = tok
    self.pad_token_id, self.bos_token_id, self.eos_token_id = pad_token_id, bos_token_id, eos_token_id
    self.add_special_tokens = add_special_tokens
    self.tok.no_padding()
    self.tok.no_truncation()

  @classmethod
  def from_file(cls, path: str | Path, **kw) -> "Tokenizer":
    """Loads `tokenizer.json` (a file, or a directory that holds one, plus tokenizer_config.json if any)."""
    path = Path(path)
    file = path / "tokenizer.json" if path.is_dir() else path
    if not file.exists():
      raise FileNotFoundError(f"no tokenizer.json at {path}")
    tok = _HFTokenizer.from_file(str(file))
    cfg_file = file.parent / "tokenizer_config.json"
    special = {}
    if cfg_file.exists():
      tc = json.loads(cfg_file.read_text())
      for name in ("pad", "bos", "eos"):
        t = tc.get(f"{name}_token")
        t = t.get("content") if isinstance(t, dict) else t
        if t is not None and tok.token_to_id(t) is not None:
          special[f"{name}_token_id"] = tok.token_to_id(t)
    return cls(tok, **{**special, **kw})

  @property
  def vocab_size(self) -> int:
    return self.tok.get_vocab_size()

  def encode(self, text: str, add_special_tokens: bool | None = None) -> list[int]:
    add = self.add_special_tokens if add_special_tokens is None else add_special_tokens
    return self.tok.encode(text, add_special_tokens=add).ids

  def encode_prompt(self, text: str) -> list[int]:
    """A prompt to be continued, encoded as the tokenizer itself does (`encode(text)`: what its post-processor puts
    before the text, e.g. BOS for Llama-style tokenizers, nothing for GPT-2 or SmolLM2, as transformers'
    tokenizers with add_special_tokens=True and lm-evaluation-harness do), without the special tokens it
    appends after the text (EOS, [SEP])."""
    bare = self.encode(text, add_special_tokens=False)
    full = self.encode(text)
    n = len(bare)
    for start in range(len(full) - n + 1):
      if full[start:start + n] == bare:
        return full[:start] + bare
    return full

  def decode(self, ids, skip_special_tokens: bool = True) -> str:
    return self.tok.decode([int(i) for i in ids], skip_special_tokens=skip_special_tokens)

  def encode_batch(self, texts, pairs=None, *, max_length: int | None = None, padding: str = "longest",
                   side: str = "right", add_special_tokens: bool | None = None) -> dict[str, np.ndarray]:
    add = self.add_special_tokens if add_special_tokens is None else add_special_tokens
    inputs = list(texts) if pairs is None else list(zip(texts, pairs))
    encs = self.tok.encode_batch(inputs, add_special_tokens=add)
    ids = [e.ids for e in encs]
    types = [e.type_ids for e in encs]
    if max_length is not None:
      ids, types = [i[:max_length] for i in ids], [t[:max_length] for t in types]
    if padding == "max_length":
      if max_length is None:
        raise ValueError("padding='max_length' needs max_length")
      length = max_length
    elif padding == "longest":
      length = max(len(i) for i in ids)
    else:
      raise ValueError(f"padding must be 'longest' or 'max_length', got {padding!r}")
    b = len(ids)
    out_ids = np.full((b, length), self.pad_token_id, np.int32)
    mask = np.zeros((b, length), np.int32)
    tt = np.zeros((b, length), np.int32)
    for r, (i, t) in enumerate(zip(ids, types)):
      sl = slice(length - len(i), length) if side == "left" else slice(0, len(i))
      out_ids[r, sl], mask[r, sl], tt[r, sl] = i, 1, t
    out = {"input_ids": out_ids, "attention_mask": mask}
    if pairs is not None:
      out["token_type_ids"] = tt
    return out
