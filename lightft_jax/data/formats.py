"""Examples -> numpy model inputs, per task kind and model family.

Which function formats which (kind, family) pair is declared by each kind in `lightft_jax.kinds`
(`KindSpec.formatters`); `formatter(kind, family)` looks it up. Every batch function takes
(task, examples, tok, max_length, padding) and returns a dict of numpy arrays.

Label convention (every family): `labels[b, t]` is the target of `logits[b, t]`, `kinds.IGNORE_INDEX`
(-100) where no loss is taken. Decoder targets are therefore already shifted (labels[t] = input_ids[t + 1] on
answer tokens); seq2seq `decoder_input_ids` are the targets shifted right behind the decoder start token (pad id).

  encoder, classification / regression: input_ids, attention_mask [b,T] (+ token_type_ids for pairs),
      labels [b] int32 / float32
  encoder, token_classification: labels [b,T], the word's tag on its first subword, -100 elsewhere
  encoder, qa: start_positions, end_positions [b] int32 (token indices of the answer; 0 = not in window)
  decoder, text-to-text: input_ids = prompt + answer, labels = answer tokens only
  encoder_decoder, text-to-text: input_ids (source), decoder_input_ids, decoder_attention_mask, labels [b,S]
  decoder, lm: see `pack_documents` / pipeline (packed rows with segment_ids and positions)

Formatters whose metrics need the original text also return `batch[HOST]`, a dict of per-row host data that
never goes to a device (the `Loader` moves it to `loader.host`; evaluation reads it): qa encoder batches carry
`contexts`, `answers` (every gold answer string) and `offsets` [b,T,2] (character span of each context token
in its context, -1 for question / special / padding tokens); text-to-text batches carry `references` (the
target texts as written, before tokenisation and truncation).
"""

from __future__ import annotations

import numpy as np

from lightft_jax.kinds import IGNORE_INDEX, get_kind

PADDINGS = ("max_length", "longest", "bucket")
HOST = "host"  # key of the per-row host-side data (strings, offsets) in a formatted batch


def pad_length(longest: int, max_length: int, padding: str) -> int:
  """Row length of a batch: max_length (fixed shapes), longest, or the smallest power of two >= longest
  (at least 8, at most max_length: few distinct shapes, so few recompiles)."""
  if padding == "max_length":
    return max_length
  if padding == "longest":
    return max(1, min(longest, max_length))
  if padding == "bucket":
    return min(max_length, max(8, 1 << max(0, longest - 1).bit_length()))
  raise ValueError(f"padding must be one of {PADDINGS}, got {padding!r}")


def pad_rows(rows, length: int, value: int, side: str = "right") -> np.ndarray:
  """list of int sequences -> int32 [len(rows), length], cut to length and padded with value."""
  out = np.full((len(rows), length), value, np.int32)
  for i, r in enumerate(rows):
    r = list(r)[:length]
    if r:
      if side == "left":
        out[i, length - len(r):] = r
      else:
        out[i, :len(r)] = r
  return out


def _mask(rows, length: int, side: str = "right") -> np.ndarray:
  return pad_rows([[1] * len(r) for r in rows], length, 0, side)


def _encoder_sequence(task, examples, tok, max_length, padding, label_dtype):
  inputs = [task.encoder_inputs(e) for e in examples]
  pairs = [x[1] for x in inputs] if len(inputs[0]) == 2 else None
  enc = tok.encode_batch([x[0] for x in inputs], pairs, max_length=max_length, padding="longest")
  length = pad_length(enc["input_ids"].shape[1], max_length, padding)
  out = {"input_ids": pad_rows(enc["input_ids"], length, tok.pad_token_id),
         "attention_mask": pad_rows(enc["attention_mask"], length, 0)}
  if pairs is not None:
    out["token_type_ids"] = pad_rows(enc["token_type_ids"], length, 0)
  out["labels"] = np.asarray([e["label"] for e in examples], label_dtype)
  return out


def encoder_classification(task, examples, tok, max_length, padding="max_length"):
  """Sequence classification for encoders: [CLS] a [SEP] (b [SEP]); labels [b] int32 class ids."""
  return _encoder_sequence(task, examples, tok, max_length, padding, np.int32)


def encoder_regression(task, examples, tok, max_length, padding="max_length"):
  """Sequence regression for encoders: as `encoder_classification`, labels [b] float32."""
  return _encoder_sequence(task, examples, tok, max_length, padding, np.float32)


def encoder_token_classification(task, examples, tok, max_length, padding="max_length"):
  """NER: words -> subwords; the first subword of a word carries its tag, the rest and specials -100."""
  encs = tok.tok.encode_batch([list(e["tokens"]) for e in examples], is_pretokenized=True,
                              add_special_tokens=tok.add_special_tokens)
  ids, labels = [], []
  for e, enc in zip(examples, encs):
    row, prev = [], None
    for w in enc.word_ids:
      row.append(IGNORE_INDEX if w is None or w == prev else int(e["labels"][w]))
      prev = w
    ids.append(enc.ids)
    labels.append(row)
  length = pad_length(max(len(i) for i in ids), max_length, padding)
  return {"input_ids": pad_rows(ids, length, tok.pad_token_id), "attention_mask": _mask(ids, length),
          "labels": pad_rows(labels, length, IGNORE_INDEX)}


def encoder_qa(task, examples, tok, max_length, padding="max_length"):
  """Extractive QA: (question, context) pairs; the first gold answer's character span -> token start/end.
  Answers cut off by max_length point at token 0 (the [CLS] convention for "no answer in this window")."""
  encs = tok.tok.encode_batch([(e["question"], e["context"]) for e in examples],
                              add_special_tokens=tok.add_special_tokens)
  starts, ends = [], []
  for e, enc in zip(examples, encs):
    ans = e["answers"]
    s = end = 0
    if ans["text"]:
      c0 = int(ans["answer_start"][0])
      c1 = c0 + len(ans["text"][0])
      seq = enc.sequence_ids
      toks = [t for t in range(min(len(enc.ids), max_length)) if seq[t] == 1
              and enc.offsets[t][0] < c1 and enc.offsets[t][1] > c0]
      if toks and enc.offsets[toks[0]][0] <= c0 and enc.offsets[toks[-1]][1] >= c1:
        s, end = toks[0], toks[-1]
    starts.append(s)
    ends.append(end)
  ids = [enc.ids for enc in encs]
  length = pad_length(max(len(i) for i in ids), max_length, padding)
  offsets = np.full((len(encs), length, 2), -1, np.int32)
  for r, enc in enumerate(encs):
    for t in range(min(len(enc.ids), length)):
      if enc.sequence_ids[t] == 1:
        offsets[r, t] = enc.offsets[t]
  host = {"contexts": [e["context"] for e in examples], "answers": [list(e["answers"]["text"]) for e in examples],
          "offsets": offsets}
  return {"input_ids": pad_rows(ids, length, tok.pad_token_id), "attention_mask": _mask(ids, length),
          "token_type_ids": pad_rows([enc.type_ids for enc in encs], length, 0),
          "start_positions": np.asarray(starts, np.int32), "end_positions": np.asarray(ends, np.int32),
          HOST: host}


def _target_ids(tok, text: str) -> list[int]:
  ids = tok.encode(text, add_special_tokens=False)
  return ids + ([tok.eos_token_id] if tok.eos_token_id is not None else [])


def decoder_text_to_text(task, examples, tok, max_length, padding="max_length"):
  """Prompt + answer in one causal row; loss on the answer (and EOS) only. Long prompts lose their start
  (the answer is kept whole)."""
  ids, labels = [], []
  for e in examples:
    prompt = tok.encode(task.source_text(e) + task.answer_prefix)
    target = _target_ids(tok, " " + task.target_text(e))
    full = (prompt + target)[-(max_length + 1):]
    n_prompt = max(0, len(full) - len(target))
    ids.append(full[:-1])
    labels.append([IGNORE_INDEX if t + 1 < n_prompt else full[t + 1] for t in range(len(full) - 1)])
  length = pad_length(max(len(i) for i in ids), max_length, padding)
  return {"input_ids": pad_rows(ids, length, tok.pad_token_id), "attention_mask": _mask(ids, length),
          "labels": pad_rows(labels, length, IGNORE_INDEX), HOST: _references(task, examples)}


def verbalizer_token_ids(task, tok) -> list[int]:
  """The first token of " word" for each class's verbalizer word (PET scores that token)."""
  words = task.verbalizer or tuple(n.replace("_", " ") for n in task.label_names)
  ids = [tok.encode(" " + w, add_special_tokens=False)[0] for w in words]
  if len(set(ids)) != len(ids):
    raise ValueError(f"task {task.name!r}: verbalizer words {words} share their first token; choose words that "
                     "start with different tokens")
  return ids


def decoder_verbalized(task, examples, tok, max_length, padding="max_length"):
  """PET-style prompt for a causal LM: the template (task.source_text) + task.answer_prefix encoded as the tokenizer
  itself encodes a prompt (`Tokenizer.encode_prompt`: BOS where its post-processor adds one, none for SmolLM2 or
  GPT-2; the ICL harness's default encoding, so a model before training scores as zero-shot ICL), left-cut to
  max_length; labels [B] class ids; choice_ids [B,C] the verbalizer's first tokens, read at each row's last token."""
  ids = [tok.encode_prompt(task.source_text(e) + task.answer_prefix)[-max_length:] for e in examples]
  length = pad_length(max(len(i) for i in ids), max_length, padding)
  choices = verbalizer_token_ids(task, tok)
  return {"input_ids": pad_rows(ids, length, tok.pad_token_id), "attention_mask": _mask(ids, length),
          "labels": np.asarray([int(e["label"]) for e in examples], np.int32),
          "choice_ids": np.tile(np.asarray(choices, np.int32), (len(examples), 1))}


def _references(task, examples) -> dict:
  return {"references": [task.target_text(e) for e in examples]}


def seq2seq_text_to_text(task, examples, tok, max_length, padding="max_length", max_target_length=None):
  """Encoder-decoder: source -> input_ids; target + EOS -> labels; decoder_input_ids = [pad] + target[:-1]."""
  tl = max_target_length or max_length
  src = [tok.encode(task.source_text(e))[:max_length] for e in examples]
  tgt = [_target_ids(tok, task.target_text(e))[:tl] for e in examples]
  dec = [[tok.pad_token_id] + t[:-1] for t in tgt]
  length = pad_length(max(len(s) for s in src), max_length, padding)
  t_len = pad_length(max(len(t) for t in tgt), tl, padding)
  return {"input_ids": pad_rows(src, length, tok.pad_token_id), "attention_mask": _mask(src, length),
          "decoder_input_ids": pad_rows(dec, t_len, tok.pad_token_id),
          "decoder_attention_mask": _mask(dec, t_len), "labels": pad_rows(tgt, t_len, IGNORE_INDEX),
          HOST: _references(task, examples)}


def lm_document(text: str, tok, max_length: int) -> dict[str, np.ndarray]:
  """One document -> next-token pairs (BOS? text EOS): input_ids = ids[:-1], labels = ids[1:], each cut to
  max_length (the rest of a long document is dropped)."""
  ids = tok.encode(text, add_special_tokens=False)
  if tok.bos_token_id is not None:
    ids = [tok.bos_token_id] + ids
  if tok.eos_token_id is not None:
    ids = ids + [tok.eos_token_id]
  ids = np.asarray(ids[:max_length + 1], np.int32)
  return {"input_ids": ids[:-1], "labels": ids[1:]}


def finish_packed(row: dict) -> dict[str, np.ndarray]:
  """Grain packing output -> model row: padding labels become -100; attention_mask, segment_ids (0 = pad),
  positions (restart at 0 in every packed document)."""
  seg = row["input_ids_segment_ids"].astype(np.int32)
  return {"input_ids": row["input_ids"].astype(np.int32), "attention_mask": (seg > 0).astype(np.int32),
          "labels": np.where(seg > 0, row["labels"], IGNORE_INDEX).astype(np.int32), "segment_ids": seg,
          "positions": row["input_ids_positions"].astype(np.int32)}


def formatter(kind: str, family: str):
  """The batch function for a (task kind, model family) pair (`kinds.get_kind(kind).formatter(family)`);
  an unknown kind or family, or an unsupported pair, raises with the options."""
  return get_kind(kind).formatter(family)
