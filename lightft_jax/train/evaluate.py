"""Evaluation over a whole split: padded last batch, weighted loss, the task's metrics.

`evaluate` runs the eval step over every batch and sums the weighted loss; what else is measured is the task
kind's evaluator (`lightft_jax.kinds`, big_vision's evaluator-per-type): `LabelMetrics` (classification,
regression, NER: the task's metrics on predicted vs gold labels), `ClassMetrics` (adds the per-class report
and the unlabelled-split check), `SpanMetrics` (QA), `TextMetrics` (seq2seq generation) and `Perplexity` (LM).
An evaluator is built per evaluation with the keywords `evaluate` passes (see `Evaluator`), sees every eval
batch (`update`) and returns its metrics (`result`); a new kind's evaluator subclasses `Evaluator`.
"""

from __future__ import annotations

from typing import Any, Iterable

import jax
import numpy as np

from lightft_jax.data.formats import HOST
from lightft_jax.kinds import IGNORE_INDEX, get_kind
from lightft_jax.train import distributed, sharding as shd
from lightft_jax.train.steps import Program


def pad_batch(batch: dict[str, np.ndarray], rows: int) -> dict[str, np.ndarray]:
  """Pads every array to `rows` rows and adds `weights` [rows] (1 real, 0 padding).

  Padding rows are zeros, except per-token labels ([b,T] int), which get -100. Per-example class labels
  ([b] int) get class 0, a valid id: the row's zero weight removes it from the loss, while a -100 there
  would index outside the logits in the cross-entropy, giving NaN, and NaN * 0 is still NaN.
  """
  n = len(next(iter(batch.values())))
  out = {}
  for k, v in batch.items():
    v = np.asarray(v)
    fill = IGNORE_INDEX if k == "labels" and v.dtype.kind == "i" and v.ndim > 1 else 0
    out[k] = np.concatenate([v, np.full((rows - n,) + v.shape[1:], fill, v.dtype)]) if rows > n else v
  out["weights"] = (np.arange(rows) < n).astype(np.float32)
  return out


def _aligned(batches: Iterable[dict]):
  """Yields (batch, host) until every process is done; a process out of rows yields an empty (all-padding)
  batch, so all processes run the same number of eval steps (the last global batch may be split unevenly).

  host: the batch's host-side rows (`formats.HOST`), taken out of the batch, or from `loader.host` for a
  `data.Loader` (which keeps them out of its batches); None when the format has none.
  """
  it, template = iter(batches), None
  while True:
    batch = next(it, None)
    host = None
    if batch is not None:
      batch = dict(batch)
      host = batch.pop(HOST, None)
      host = getattr(it, "host", None) if host is None else host
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
    yield batch, host


def _prompts(batch: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
  """The generation prompts of a text-to-text batch: encoder inputs as they are (encoder-decoder), or, for
  a decoder row (prompt + answer, right-padded), the tokens up to the first labelled position, left-padded."""
  if "decoder_input_ids" in batch:
    return batch["input_ids"], batch["attention_mask"]
  labelled = batch["labels"] != IGNORE_INDEX
  ends = np.maximum(np.where(labelled.any(1), labelled.argmax(1) + 1, batch["attention_mask"].sum(1)), 1)
  ids, mask = np.zeros_like(batch["input_ids"]), np.zeros_like(batch["attention_mask"])
  for r, n in enumerate(ends):
    ids[r, ids.shape[1] - n:], mask[r, ids.shape[1] - n:] = batch["input_ids"][r, :n], 1
  return ids, mask


def _generated_texts(model, batch: dict[str, np.ndarray], tokenizer, max_new_tokens: int,
                     host: dict | None) -> tuple[list[str], list[str]]:
  """Greedy continuations (up to `max_new_tokens`, whatever the label width) of a text-to-text batch, and its
  reference texts: the targets as written when the batch carries them (`host["references"]`), else the
  decoded labels (-100 dropped)."""
  from lightft_jax.models.generate import generate
  ids, mask = _prompts(batch)
  stop = () if tokenizer.eos_token_id is None else (tokenizer.eos_token_id,)
  out = np.asarray(generate(model, ids, mask, max_new_tokens=max_new_tokens, stop_tokens=stop,
                            pad_token_id=tokenizer.pad_token_id))
  preds = [tokenizer.decode([int(t) for t in row if t != tokenizer.pad_token_id]).strip() for row in out]
  n = len(batch["labels"])
  if host is not None and "references" in host:
    refs = list(host["references"]) + [""] * (n - len(host["references"]))
  else:
    refs = [tokenizer.decode([int(t) for t in row if t != IGNORE_INDEX]).strip() for row in batch["labels"]]
  return preds, refs


def span_text(context: str, offsets: np.ndarray, start: int, end: int) -> str:
  """The original text of token span [start, end] in `context`: from the first context token's first
  character to the last one's last (offsets [T,2], -1 on non-context tokens), as the SQuAD post-processing
  of transformers does; "" when the span holds no context token."""
  toks = [t for t in range(max(start, 0), min(end, len(offsets) - 1) + 1) if offsets[t, 0] >= 0]
  return context[int(offsets[toks[0], 0]):int(offsets[toks[-1], 1])] if toks else ""


def _gather_texts(texts: tuple[list, list]) -> tuple[list, list]:
  """Every process's (predicted, reference) texts, in process order (several processes return the same)."""
  gathered = distributed.allgather_json([list(texts[0]), [list(r) if isinstance(r, list) else r
                                                          for r in texts[1]]])
  return [p for g in gathered for p in g[0]], [r for g in gathered for r in g[1]]


class Evaluator:
  """A task kind's metrics over one evaluation; this base measures nothing beyond the loss.

  Built by `evaluate` with keywords: task (`data.Task`: its `metrics` and `label_names`), prog / params /
  frozen / rest (the program and state being evaluated, for evaluators that run the model themselves),
  local_rows (rows of this process's slice of each global batch), report, tokenizer, max_new_tokens (see
  `evaluate`). Per eval batch: `check(batch)` before the step (raise on inputs the kind cannot score), then
  `update(batch, padded, out, host)` with the raw and padded batch, the eval step's outputs (`loss_sum`,
  `weight`, `predictions`, `weights` and the replicated targets) and the batch's host rows. `result(loss)`
  returns the metrics beside `loss` and `examples`.
  """

  def __init__(self, *, task, prog: Program | None = None, params: Any = None, frozen: Any = None,
               rest: Any = None, local_rows: int = 0, report: bool = False, tokenizer=None,
               max_new_tokens: int = 0):
    self.task, self.prog, self.params, self.frozen, self.rest = task, prog, params, frozen, rest
    self.local_rows, self.report, self.tokenizer, self.max_new_tokens = local_rows, report, tokenizer, max_new_tokens

  def check(self, batch: dict[str, np.ndarray]) -> None:
    pass

  def update(self, batch: dict, padded: dict, out: dict, host: dict | None) -> None:
    pass

  def result(self, loss: float) -> dict[str, Any]:
    return {}


class LabelMetrics(Evaluator):
  """`task.metrics` on the argmax / regression predictions vs the labels of the real rows (per-token for NER)."""

  def __init__(self, **kw):
    super().__init__(**kw)
    self.preds, self.refs = [], []

  def update(self, batch, padded, out, host):
    keep = out["weights"] > 0
    self.preds += list(np.asarray(out["predictions"])[keep])
    self.refs += list(np.asarray(out["labels"])[keep])

  def result(self, loss):
    if not self.preds:
      return {}
    preds, refs = [p.tolist() for p in self.preds], [r.tolist() for r in self.refs]
    return self.scores(preds, refs)

  def scores(self, preds: list, refs: list) -> dict[str, Any]:
    return {k: float(v) for k, v in self.task.metrics(preds, refs).items()}


class ClassMetrics(LabelMetrics):
  """LabelMetrics for class ids; an unlabelled split is an error, and `report` adds sklearn's per-class
  precision / recall / F1 text."""

  def check(self, batch):
    """Class labels must be class ids: TFDS marks unlabelled splits (GLUE / SuperGLUE test) with -1."""
    labels = np.asarray(batch.get("labels", []))
    if labels.ndim == 1 and np.any(labels < 0):
      raise ValueError(f"eval batch has class labels {sorted(set(labels[labels < 0].tolist()))} (an unlabelled "
                       "split, e.g. GLUE test): evaluate a labelled split instead, e.g. "
                       "--config.task.test_split=validation, or skip it with --config.task.test_split=''")

  def scores(self, preds, refs):
    metrics = super().scores(preds, refs)
    if self.report:
      from sklearn.metrics import classification_report
      names = self.task.label_names or sorted({str(r) for r in refs})
      metrics["report"] = classification_report(refs, preds, labels=list(range(len(names))), target_names=names,
                                                digits=4, zero_division=0)
    return metrics


class SpanMetrics(Evaluator):
  """Extractive QA: `span_em` (best span == gold token span) and, when the batches carry the original
  contexts and answers, the task's SQuAD metrics on the predicted span's text."""

  def __init__(self, **kw):
    super().__init__(**kw)
    self.preds, self.refs, self.texts = [], [], ([], [])

  def update(self, batch, padded, out, host):
    keep = out["weights"] > 0
    gold = np.stack([out["start_positions"], out["end_positions"]], -1)
    self.preds += list(np.asarray(out["predictions"])[keep])
    self.refs += list(gold[keep])
    if host is not None and "answers" in host:
      # This process's rows are the first len(batch) of its local slice of the global outputs.
      lo = jax.process_index() * self.local_rows
      local_pred = np.asarray(out["predictions"])[lo:lo + len(host["answers"])]
      for context, offsets, answers, (s, e) in zip(host["contexts"], host["offsets"], host["answers"], local_pred):
        self.texts[0].append(span_text(context, offsets, int(s), int(e)))
        self.texts[1].append(list(answers) or [""])

  def result(self, loss):
    texts = _gather_texts(self.texts) if jax.process_count() > 1 else self.texts
    metrics = {}
    if self.preds:
      metrics["span_em"] = float(np.mean([np.array_equal(p, r) for p, r in zip(self.preds, self.refs)]))
    if texts[0]:
      metrics.update({k: float(v) for k, v in self.task.metrics(*texts).items()})
    return metrics


class Perplexity(Evaluator):
  """Language modelling: exp(loss) (the loss is the mean token cross-entropy)."""

  def result(self, loss):
    return {"perplexity": float(np.exp(min(loss, 50.0)))}


class TextMetrics(Perplexity):
  """Text-to-text: perplexity, and with a tokenizer, greedy generation scored with the task's text metrics."""

  def __init__(self, **kw):
    super().__init__(**kw)
    self.model, self.texts = None, ([], [])
    if self.tokenizer is not None:
      if self.max_new_tokens <= 0:
        raise ValueError(f"seq2seq evaluation generates up to max_new_tokens tokens; got {self.max_new_tokens}. "
                         "Set --config.eval.max_new_tokens=N (N > 0)")
      self.model = self.prog.model(self.params, self.frozen, self.rest, train=False)

  def update(self, batch, padded, out, host):
    if self.model is None:
      return
    p, r = _generated_texts(self.model, padded, self.tokenizer, self.max_new_tokens, host)
    n = len(batch["labels"])
    self.texts[0].extend(p[:n])
    self.texts[1].extend(r[:n])

  def result(self, loss):
    metrics = super().result(loss)
    texts = _gather_texts(self.texts) if jax.process_count() > 1 and self.model is not None else self.texts
    if texts[0]:
      metrics.update({k: float(v) for k, v in self.task.metrics(*texts).items()})
    return metrics


def evaluate(prog: Program, params: Any, frozen: Any, rest: Any, batches: Iterable[dict], *, task,
             local_rows: int, limit: int = 0, report: bool = False, tokenizer=None,
             max_new_tokens: int = 0) -> dict[str, float]:
  """Loss plus the metrics of the task kind's evaluator (`kinds.get_kind(prog.kind).evaluator`):
  perplexity for LM kinds; `task.metrics` on argmax / regression predictions; with `report`, a
  classification task also gets `report` (sklearn's per-class precision / recall / F1 text).

  seq2seq with a `tokenizer`: greedy generation (`models.generate`, `max_new_tokens` new tokens at most, the
  config's `eval.max_new_tokens`; it must be positive) scored with the task's text metrics (BLEU / ROUGE)
  against the target texts as written (decoded labels for batches without them). qa: `span_em`, the
  fraction of best spans (`losses.best_spans`) equal to the gold token span; when the batches carry the
  original contexts and answers (`formats.encoder_qa` does), also the task's SQuAD exact_match / f1 of the
  predicted span's original text against every gold answer string (the max over them, as the official
  v1.1 script takes). Several processes: every process's texts are gathered, so all return the same metrics.

  batches: this process's rows of each eval batch (the last may be short; it is padded to `local_rows`).
  """
  evaluator = get_kind(prog.kind).make_evaluator(
      task=task, prog=prog, params=params, frozen=frozen, rest=rest, local_rows=local_rows, report=report,
      tokenizer=tokenizer, max_new_tokens=max_new_tokens)
  loss_sum, weight, seen = 0.0, 0.0, 0
  for batch, host in _aligned(batches):
    evaluator.check(batch)
    padded = pad_batch(batch, local_rows)
    out = jax.device_get(prog.eval_step(params, frozen, rest, shd.global_batch(padded, prog.mesh)))
    loss_sum, weight = loss_sum + float(out["loss_sum"]), weight + float(out["weight"])
    evaluator.update(batch, padded, out, host)
    seen += int(np.sum(out["weights"] > 0))
    if limit and seen >= limit:
      break
  if seen == 0:
    raise ValueError(f"evaluation of task {getattr(task, 'name', task)!r} saw no examples: the split is empty, or "
                     "too small for one batch")
  metrics = {"loss": loss_sum / max(weight, 1e-9), "examples": seen}
  metrics.update(evaluator.result(metrics["loss"]))
  return metrics


# ---------------------------------------------------------------------------------------------------------
# Multi-task runs

AVERAGE = "average"  # key of the mean over tasks of each task's primary (first) metric


def combine_task_metrics(per_task: dict[str, dict[str, Any]], primary: dict[str, str] | None = None,
                         prefix: str = "") -> dict[str, Any]:
  """{task name: that task's metrics} -> one flat dict for results.json / metrics.jsonl:

    loss, examples          example-weighted mean loss and the total example count over the tasks
    average                 mean over tasks of each task's primary metric (`primary[name]`, else its first
                            metric besides loss / examples: a GLUE-score-style average)
    average/<m>             mean over tasks of metric m, for every m that all tasks report
    <task>/<m>              each task's own metrics (loss and examples included)
    report                  the tasks' classification reports, one after another (when any has one)

  `average` comes first after loss / examples, so it is what `train.loop.primary_metric` picks (keep-best,
  early stopping) when `eval.metric` is not set. `prefix` goes before every key but the report.
  """
  if not per_task:
    return {}
  primary = dict(primary or {})
  skip = ("loss", "examples", "report")
  firsts, shared = [], None
  for name, m in per_task.items():
    names = [k for k in m if k not in skip]
    if not names:
      continue
    key = primary.get(name) or names[0]
    if key not in m:
      raise ValueError(f"task {name!r} has no metric {key!r}; it reports {names}")
    firsts.append(float(m[key]))
    shared = names if shared is None else [k for k in shared if k in names]
  examples = sum(int(m.get("examples", 0)) for m in per_task.values())
  out: dict[str, Any] = {}
  if all("loss" in m for m in per_task.values()):
    out[prefix + "loss"] = (sum(float(m["loss"]) * int(m.get("examples", 0)) for m in per_task.values())
                            / max(examples, 1))
  out[prefix + "examples"] = examples
  if firsts:
    out[prefix + AVERAGE] = float(np.mean(firsts))
  for k in shared or []:
    out[f"{prefix}{AVERAGE}/{k}"] = float(np.mean([float(m[k]) for m in per_task.values()]))
  reports = []
  for name, m in per_task.items():
    for k, v in m.items():
      if k == "report":
        reports.append(f"== {prefix}{name} ==\n{v}")
      else:
        out[f"{prefix}{name}/{k}"] = v
  if reports:
    out["report"] = "\n\n".join(reports)
  return out


def evaluate_tasks(prog: Program, params: Any, frozen: Any, rest: Any, tasks: dict[str, tuple[Any, Iterable[dict]]],
                   *, local_rows: int, limit: int = 0, report: bool = False, primary: dict[str, str] | None = None,
                   prefix: str = "", **kw) -> dict[str, Any]:
  """`evaluate` on every task of a multi-task run, each on its own batches (which carry its `task_ids`), up to
  `limit` examples per task, combined by `combine_task_metrics`. tasks: {name: (data.Task, batches)}."""
  per_task = {name: evaluate(prog, params, frozen, rest, batches, task=task, local_rows=local_rows, limit=limit,
                             report=report, **kw)
              for name, (task, batches) in tasks.items()}
  return combine_task_metrics(per_task, primary, prefix)
