"""Generated samples at the end of a language-model run: `samples.json` and `samples.txt` in the run directory.

A config opts in with a `samples` section (configs/lm_finetune.py, configs/gpt2_wikitext.py):

  samples.num             how many samples (0: none)
  samples.prompts         the prompts; () takes the first `num` documents of `samples.split` instead, each
                          cut to its first `samples.prompt_tokens` tokens, the document's next tokens being the
                          `reference` continuation
  samples.split           the split those documents come from ("" : task.eval_split)
  samples.prompt_tokens   prompt length, in tokens, of a document prompt
  samples.max_new_tokens  tokens generated after each prompt (greedy decoding; a row stops at EOS)

Prompts are tokenized as the "lm" pipeline tokenizes documents (`formats.lm_document`: BOS first when the
tokenizer has one), so a prompt looks like the beginning of a training document. Each record holds `prompt`,
`continuation` (the generated text), `reference` (document prompts only), `greedy` and `max_new_tokens`;
results.json gets `"samples": "samples.json"`. The hook applies to decoder-only models of "lm"-head task kinds.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

import numpy as np

from lightft_jax.kinds import get_kind


def document_prompts(texts, tokenizer, prompt_tokens: int, reference_tokens: int) -> list[dict]:
  """Each text's first `prompt_tokens` tokens as a prompt (ids with BOS, and text), and its next
  `reference_tokens` tokens as the reference continuation. Texts shorter than `prompt_tokens` + 1 are skipped."""
  out = []
  for text in texts:
    ids = tokenizer.encode(text, add_special_tokens=False)
    if len(ids) <= prompt_tokens:
      continue
    head, tail = ids[:prompt_tokens], ids[prompt_tokens:prompt_tokens + reference_tokens]
    out.append({"ids": _with_bos(head, tokenizer), "prompt": tokenizer.decode(head),
                "reference": tokenizer.decode(tail)})
  return out


def _with_bos(ids: list[int], tokenizer) -> list[int]:
  return ([tokenizer.bos_token_id] if tokenizer.bos_token_id is not None else []) + list(ids)


def left_padded(rows: list[list[int]], pad_id: int) -> tuple[np.ndarray, np.ndarray]:
  """Token id lists -> LEFT-padded input_ids and attention_mask [B, max length] (what `generate` takes)."""
  width = max(len(r) for r in rows)
  ids = np.full((len(rows), width), pad_id, np.int32)
  mask = np.zeros((len(rows), width), np.int32)
  for i, r in enumerate(rows):
    ids[i, width - len(r):] = r
    mask[i, width - len(r):] = 1
  return ids, mask


def max_prompt_length(model, max_new_tokens: int) -> int:
  """The longest prompt `generate` accepts with `max_new_tokens` on a model with learned or rotary positions
  (its input transform, e.g. a soft prompt, takes positions too)."""
  cfg = model.cfg
  if cfg.position not in ("learned", "rope"):
    return 1 << 30
  added = 0 if model.input_transform is None else int(model.input_transform.added_length)
  room = cfg.max_positions - added - max_new_tokens + 1
  if room < 1:
    raise ValueError(f"samples.max_new_tokens={max_new_tokens} leaves no room for a prompt within the model's "
                     f"max_positions={cfg.max_positions}")
  return room


def generate_samples(model, tokenizer, prompts: list[dict], max_new_tokens: int) -> list[dict]:
  """Greedy continuations of `prompts` ({"ids", "prompt"[, "reference"]}) by a decoder-only LM."""
  from lightft_jax.models.generate import generate
  if not prompts:
    return []
  pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
  room = max_prompt_length(model, max_new_tokens)
  ids, mask = left_padded([p["ids"][-room:] for p in prompts], pad)  # a long prompt keeps its last tokens
  stop = () if tokenizer.eos_token_id is None else (tokenizer.eos_token_id,)
  out = np.asarray(generate(model, ids, mask, max_new_tokens=max_new_tokens, stop_tokens=stop, pad_token_id=pad))
  records = []
  for p, row in zip(prompts, out):
    row = [int(t) for t in row]
    if tokenizer.eos_token_id is not None and tokenizer.eos_token_id in row:
      row = row[:row.index(tokenizer.eos_token_id)]  # the stop token and the padding after it
    rec = {"prompt": p["prompt"], "continuation": tokenizer.decode(row)}
    if "reference" in p:
      rec["reference"] = p["reference"]
    records.append({**rec, "greedy": True, "max_new_tokens": int(max_new_tokens)})
  return records


def write_samples(workdir: str | Path, records: list[dict]) -> None:
  """samples.json (the records) and samples.txt (prompt, then the continuation after ` >>> `, per sample)."""
  workdir = Path(workdir)
  (workdir / "samples.json").write_text(json.dumps(records, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
  blocks = []
  for i, r in enumerate(records):
    block = f"### sample {i} (greedy, max_new_tokens={r['max_new_tokens']})\n{r['prompt']} >>> {r['continuation']}"
    if "reference" in r:
      block += f"\n--- reference continuation:\n{r['prompt']} >>> {r['reference']}"
    blocks.append(block)
  (workdir / "samples.txt").write_text("\n\n".join(blocks) + "\n", encoding="utf-8")


def samples_hook(config, task, tokenizer) -> Callable[..., dict[str, Any]] | None:
  """The workload's `finish` hook writing samples (see the module docstring), or None when the config has no
  `samples` section, asks for none, or the task is not language modelling."""
  section = config.get("samples")
  if not section or section.num <= 0 or get_kind(task.kind).head != "lm":
    return None

  def prompts() -> list[dict]:
    if section.prompts:
      return [{"ids": _with_bos(tokenizer.encode(p, add_special_tokens=False), tokenizer), "prompt": p}
              for p in list(section.prompts)[:section.num]]
    src = task.open(section.split or config.task.eval_split, config.task.data_dir or None)
    texts = (src[i]["text"] for i in range(len(src)))
    found = []
    for text in texts:  # documents long enough for a prompt, until `num`
      found += document_prompts([text], tokenizer, section.prompt_tokens, section.max_new_tokens)
      if len(found) == section.num:
        break
    return found

  def finish(prog, params, frozen, rest, workdir) -> dict[str, Any]:
    from lightft_jax.train import distributed
    model = prog.model(params, frozen, rest, train=False)
    if model.cfg.arch != "decoder":
      return {}
    records = generate_samples(model, tokenizer, prompts(), section.max_new_tokens)
    if distributed.is_main():
      write_samples(workdir, records)
    return {"samples": "samples.json"}

  return finish


def samples_section(num: int = 4, max_new_tokens: int = 32, prompt_tokens: int = 16, prompts=(), split: str = ""):
  """A config's `samples` section (ml_collections.ConfigDict) with these values."""
  import ml_collections
  return ml_collections.ConfigDict({"num": num, "prompts": tuple(prompts), "split": split,
                                    "prompt_tokens": prompt_tokens, "max_new_tokens": max_new_tokens})
