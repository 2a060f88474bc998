"""Evaluation over a whole split: padded last batch, weighted loss, the task's metrics."""

from __future__ import annotations

from typing import Any, Iterable

import jax
import numpy as np

from lightft_jax.train import distributed, sharding as shd
from lightft_jax.train.losses import IGNORE
from lightft_jax.train.steps import Program

KINDS_WITH_LABEL_METRICS = ("classification", "regression", "icl_regression", "token_classification")


def pad_batch(batch: dict[str, np.ndarray], rows: int) -> dict[str, np.ndarray]:
  """Pads every array to `rows` rows (zeros, labels -100) and adds `weights` [rows] (1 real, 0 padding)."""
  n = len(next(iter(batch.values())))
  out = {}
  for k, v in batch.items():
    v = np.asarray(v)
    fill = -100 if k == "labels" and v.dtype.kind == "i" else 0
    out[k] = np.concatenate([v, np.full((rows - n,) + v.shape[1:], fill, v.dtype)]) if rows > n else v
  out["weights"] = (np.arange(rows) < n).astype(np.float32)
  return out


def _aligned(batches: Iterable[dict]):
  """Yields batches until every process is done; a process out of rows yields an empty (all-padding) batch,
  so all processes run the same number of eval steps (the last global batch may be split unevenly)."""
  it, template = iter(batches), None
  while True:
    batch = next(it, None)
    template = batch if batch is not None else template
    if jax.process_count() > 1:
      if not any(distributed.allgather_json(batch is not None)):
        return
      if batch is None:
        if template is None:
          raise ValueError("this process got no eval rows at all; use an eval batch size <= the split size")
        batch = {k: np.asarray(v)[:0] for k, v in template.items()}
    elif batch is None:
      return
    yield batch


def _prompts(batch: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
  """The generation prompts of a text-to-text batch: encoder inputs as they are (encoder-decoder), or, for
  a decoder row (prompt + answer, right-padded), the tokens up to the first labelled position, left-padded."""
  if "decoder_input_ids" in batch:
    return batch["input_ids"], batch["attention_mask"]
  labelled = batch["labels"] != IGNORE
  ends = np.maximum(np.where(labelled.any(1), labelled.argmax(1) + 1, batch["attention_mask"].sum(1)), 1)
  ids, mask = np.zeros_like(batch["input_ids"]), np.zeros_like(batch["attention_mask"])
  for r, n in enumerate(ends):
    ids[r, ids.shape[1] - n:], mask[r, ids.shape[1] - n:] = batch["input_ids"][r, :n], 1
  return ids, mask


def _generated_texts(model, batch: dict[str, np.ndarray], tokenizer) -> tuple[list[str], list[str]]:
  """Greedy continuations of a text-to-text batch and its reference texts (decoded labels, -100 dropped)."""
  from lightft_jax.models.generate import generate
  ids, mask = _prompts(batch)
  stop = () if tokenizer.eos_token_id is None else (tokenizer.eos_token_id,)
  out = np.asarray(generate(model, ids, mask, max_new_tokens=batch["labels"].shape[1], stop_tokens=stop,
                            pad_token_id=tokenizer.pad_token_id))
  preds = [tokenizer.decode([int(t) for t in row if t != tokenizer.pad_token_id]).strip() for row in out]
  refs = [tokenizer.decode([int(t) for t in row if t != IGNORE]).strip() for row in batch["labels"]]
  return preds, refs


def evaluate(prog: Program, params: Any, frozen: Any, rest: Any, batches: Iterable[dict], *, task,
             local_rows: int, limit: int = 0, report: bool = False, tokenizer=None) -> dict[str, float]:
  """Loss (and perplexity for LM kinds) plus `task.metrics` on argmax / regression predictions; with
  `report`, a classification task also gets `report` (sklearn's per-class precision / recall / F1 text).

  seq2seq with a `tokenizer`: greedy generation (`models.generate`, up to the label length) scored with the
  task's text metrics (BLEU / ROUGE) against the decoded labels. qa: `span_em`, the fraction of best spans
  (`losses.best_spans`) equal to the gold token span; with a `tokenizer` (single process), also the task's
  SQuAD exact_match / f1 on the decoded predicted span vs the decoded gold token span (the loaders carry
  no raw answer texts or offsets, so the reference is the gold span's tokens, not the original string).

  batches: this process's rows of each eval batch (the last may be short; it is padded to `local_rows`).
  """
  loss_sum, weight, preds, refs, seen, texts = 0.0, 0.0, [], [], 0, ([], [])
  model = prog.model(params, frozen, rest, train=False) if prog.kind == "seq2seq" and tokenizer else None
  for batch in _aligned(batches):
    padded = pad_batch(batch, local_rows)
    out = jax.device_get(prog.eval_step(params, frozen, rest, shd.global_batch(padded, prog.mesh)))
    loss_sum, weight = loss_sum + float(out["loss_sum"]), weight + float(out["weight"])
    keep = out["weights"] > 0
    if prog.kind in KINDS_WITH_LABEL_METRICS:
      preds += list(np.asarray(out["predictions"])[keep])
      refs += list(np.asarray(out["labels"])[keep])
    elif prog.kind == "qa":
      gold = np.stack([out["start_positions"], out["end_positions"]], -1)
      preds += list(np.asarray(out["predictions"])[keep])
      refs += list(gold[keep])
      if tokenizer is not None and jax.process_count() == 1:
        for row, p, g in zip(padded["input_ids"][keep], out["predictions"][keep], gold[keep]):
          texts[0].append(tokenizer.decode(row[p[0]:p[1] + 1]))
          texts[1].append([tokenizer.decode(row[g[0]:g[1] + 1])])
    elif model is not None:
      p, r = _generated_texts(model, padded, tokenizer)
      texts[0].extend(np.asarray(p, object)[keep])
      texts[1].extend(np.asarray(r, object)[keep])
    seen += int(np.sum(out["weights"] > 0))
    if limit and seen >= limit:
      break
  metrics = {"loss": loss_sum / max(weight, 1e-9), "examples": seen}
  if prog.kind in ("lm", "seq2seq"):
    metrics["perplexity"] = float(np.exp(min(metrics["loss"], 50.0)))
  if prog.kind == "qa" and preds:
    metrics["span_em"] = float(np.mean([np.array_equal(p, r) for p, r in zip(preds, refs)]))
  if texts[0]:
    metrics.update({k: float(v) for k, v in task.metrics(*texts).items()})
  elif prog.kind in KINDS_WITH_LABEL_METRICS and preds:
    if prog.kind == "token_classification":
      preds, refs = [list(map(int, p)) for p in preds], [list(map(int, r)) for r in refs]
    else:
      preds, refs = [p.item() for p in preds], [r.item() for r in refs]
    metrics.update({k: float(v) for k, v in task.metrics(preds, refs).items()})
    if report and prog.kind == "classification":
      from sklearn.metrics import classification_report
      names = task.label_names or sorted({str(r) for r in refs})
      metrics["report"] = classification_report(refs, preds, labels=list(range(len(names))), target_names=names,
                                                digits=4, zero_division=0)
  return metrics
