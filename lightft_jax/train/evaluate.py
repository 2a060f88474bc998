"""Evaluation over a whole split: padded last batch, weighted loss, the task's metrics."""

from __future__ import annotations

from typing import Any, Iterable

import jax
import numpy as np

from lightft_jax.train import distributed, sharding as shd
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


def evaluate(prog: Program, params: Any, frozen: Any, rest: Any, batches: Iterable[dict], *, task,
             local_rows: int, limit: int = 0, report: bool = False) -> dict[str, float]:
  """Loss (and perplexity for LM kinds) plus `task.metrics` on argmax / regression predictions; with
  `report`, a classification task also gets `report` (sklearn's per-class precision / recall / F1 text).

  batches: this process's rows of each eval batch (the last may be short; it is padded to `local_rows`).
  """
  loss_sum, weight, preds, refs, seen = 0.0, 0.0, [], [], 0
  for batch in _aligned(batches):
    out = jax.device_get(prog.eval_step(params, frozen, rest,
                                        shd.global_batch(pad_batch(batch, local_rows), prog.mesh)))
    loss_sum, weight = loss_sum + float(out["loss_sum"]), weight + float(out["weight"])
    if prog.kind in KINDS_WITH_LABEL_METRICS:
      keep = out["weights"] > 0
      preds += list(np.asarray(out["predictions"])[keep])
      refs += list(np.asarray(out["labels"])[keep])
    seen += int(np.sum(out["weights"] > 0))
    if limit and seen >= limit:
      break
  metrics = {"loss": loss_sum / max(weight, 1e-9), "examples": seen}
  if prog.kind in ("lm", "seq2seq"):
    metrics["perplexity"] = float(np.exp(min(metrics["loss"], 50.0)))
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
