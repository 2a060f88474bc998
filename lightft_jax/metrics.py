"""Evaluation metrics, backed by the well-kept reference libraries where they exist.

scikit-learn (accuracy, F1, Matthews correlation, classification report), scipy (Pearson / Spearman),
seqeval (span-level NER F1), sacrebleu (BLEU), rouge-score (ROUGE). SQuAD EM/F1 re-implements the official
v1.1 evaluation script (its normalisation: lower case, strip punctuation and articles, squash whitespace).
Every function takes plain Python / numpy sequences and returns Python floats (or a dict of them).
"""

from __future__ import annotations

import collections
import re
import string
from typing import Sequence

import numpy as np


def _labels(predictions, references) -> tuple[np.ndarray, np.ndarray]:
  p, r = np.asarray(predictions).reshape(-1), np.asarray(references).reshape(-1)
  if p.shape != r.shape:
    raise ValueError(f"predictions ({p.shape[0]}) and references ({r.shape[0]}) differ in length")
  if p.size == 0:
    raise ValueError("no predictions to score")
  return p, r


def accuracy(predictions, references) -> float:
  """Fraction of predictions equal to their reference. predictions, references: [N] labels."""
  p, r = _labels(predictions, references)
  return float(np.mean(p == r))


def f1(predictions, references, average: str = "macro") -> float:
  """F1 over class labels; average: "macro" | "micro" | "binary" (positive class 1) | "weighted"."""
  from sklearn.metrics import f1_score
  if average not in ("macro", "micro", "binary", "weighted"):
    raise ValueError(f"average must be one of macro, micro, binary, weighted; got {average!r}")
  p, r = _labels(predictions, references)
  return float(f1_score(r, p, average=average, zero_division=0))


def matthews_corrcoef(predictions, references) -> float:
  """Matthews correlation coefficient (the CoLA metric), in [-1, 1]."""
  from sklearn.metrics import matthews_corrcoef as mcc
  p, r = _labels(predictions, references)
  return float(mcc(r, p))


def pearson_spearman(predictions, references) -> dict[str, float]:
  """Pearson and Spearman correlation of real-valued predictions (the STS-B metrics)."""
  from scipy import stats
  p, r = _labels(predictions, references)
  p, r = p.astype(np.float64), r.astype(np.float64)
  return {"pearson": float(stats.pearsonr(p, r)[0]), "spearman": float(stats.spearmanr(p, r)[0])}


def ner_span_f1(predictions: Sequence[Sequence[str]], references: Sequence[Sequence[str]]) -> dict[str, float]:
  """Entity-level precision / recall / F1 (CoNLL style, seqeval) over per-word IOB tag sequences."""
  from seqeval.metrics import f1_score, precision_score, recall_score
  predictions, references = [list(p) for p in predictions], [list(r) for r in references]
  if len(predictions) != len(references) or any(len(p) != len(r) for p, r in zip(predictions, references)):
    raise ValueError("predicted and reference tag sequences must have the same number of sentences and words")
  return {"precision": float(precision_score(references, predictions)),
          "recall": float(recall_score(references, predictions)),
          "f1": float(f1_score(references, predictions))}


def normalize_answer(s: str) -> str:
  """The official SQuAD normalisation: lower case, drop punctuation and a/an/the, squash whitespace."""
  s = s.lower()
  s = "".join(ch for ch in s if ch not in set(string.punctuation))
  s = re.sub(r"\b(a|an|the)\b", " ", s)
  return " ".join(s.split())


def _token_f1(prediction: str, truth: str) -> float:
  p, t = normalize_answer(prediction).split(), normalize_answer(truth).split()
  common = collections.Counter(p) & collections.Counter(t)
  same = sum(common.values())
  if same == 0:
    return 0.0
  precision, recall = same / len(p), same / len(t)
  return 2 * precision * recall / (precision + recall)


def squad_em_f1(predictions: Sequence[str], references: Sequence[Sequence[str]]) -> dict[str, float]:
  """SQuAD v1.1 exact match and token F1, in percent, as the official evaluate-v1.1.py computes them:
  predictions are answer strings (the original text of the predicted span), each reference is the list of
  every gold answer string of that question, and each score is the max over those gold answers."""
  if len(predictions) != len(references):
    raise ValueError(f"{len(predictions)} predictions for {len(references)} questions")
  if not predictions:
    raise ValueError("no predictions to score")
  em = f = 0.0
  for i, (pred, golds) in enumerate(zip(predictions, references)):
    golds = [golds] if isinstance(golds, str) else list(golds)
    if not golds:
      raise ValueError(f"question {i} has no gold answers; SQuAD v1.1 scores against at least one (use [\"\"] "
                       f"for a question whose answer is the empty string)")
    em += max(float(normalize_answer(pred) == normalize_answer(g)) for g in golds)
    f += max(_token_f1(pred, g) for g in golds)
  n = len(predictions)
  return {"exact_match": 100.0 * em / n, "f1": 100.0 * f / n}


def bleu(predictions: Sequence[str], references: Sequence[str] | Sequence[Sequence[str]]) -> float:
  """Corpus BLEU (sacrebleu, default 13a tokenisation). references: one string per prediction, or a list
  of reference strings per prediction."""
  import sacrebleu
  refs = [[r] if isinstance(r, str) else list(r) for r in references]
  if len(refs) != len(predictions):
    raise ValueError(f"{len(predictions)} predictions for {len(refs)} references")
  n_refs = max(len(r) for r in refs)
  streams = [[r[i] if i < len(r) else "" for r in refs] for i in range(n_refs)]
  return float(sacrebleu.corpus_bleu(list(predictions), streams).score)


def rouge(predictions: Sequence[str], references: Sequence[str],
          types: Sequence[str] = ("rouge1", "rouge2", "rougeL", "rougeLsum")) -> dict[str, float]:
  """Mean ROUGE F-measure per type (rouge-score, with Porter stemming); rougeLsum splits on newlines."""
  from rouge_score import rouge_scorer
  if len(predictions) != len(references):
    raise ValueError(f"{len(predictions)} predictions for {len(references)} references")
  scorer = rouge_scorer.RougeScorer(list(types), use_stemmer=True)
  totals = collections.defaultdict(float)
  for p, r in zip(predictions, references):
    for k, s in scorer.score(r, p).items():
      totals[k] += s.fmeasure
  return {k: totals[k] / len(predictions) for k in types}


def perplexity(nll, weights=None) -> float:
  """exp of the weighted mean negative log-likelihood. nll: per-token NLL [...]; weights: same shape
  (1 = counted token, 0 = padding), default all ones."""
  nll = np.asarray(nll, np.float64)
  w = np.ones_like(nll) if weights is None else np.asarray(weights, np.float64)
  if w.shape != nll.shape:
    raise ValueError(f"weights shape {w.shape} does not match nll shape {nll.shape}")
  if w.sum() <= 0:
    raise ValueError("perplexity needs at least one counted token")
  return float(np.exp((nll * w).sum() / w.sum()))


def normalized_squared_error(predictions, targets, dim: int) -> float:
  """Mean squared error divided by the input dimension d (Garg et al. 2022's ICL regression metric).
  predictions, targets: [...] real values."""
  p, t = np.asarray(predictions, np.float64), np.asarray(targets, np.float64)
  if p.shape != t.shape:
    raise ValueError(f"predictions shape {p.shape} does not match targets shape {t.shape}")
  if dim <= 0:
    raise ValueError(f"dim must be positive, got {dim}")
  return float(np.mean((p - t) ** 2) / dim)


def classification_report(predictions, references, label_names: Sequence[str] | None = None,
                          digits: int = 4) -> tuple[str, dict]:
  """Per-class precision / recall / F1 / support plus accuracy and macro / weighted averages
  (scikit-learn). Returns (printable text, the same numbers as a nested dict keyed by class name)."""
  from sklearn.metrics import classification_report as report
  p, r = _labels(predictions, references)
  kw = {}
  if label_names is not None:
    kw = dict(labels=list(range(len(label_names))), target_names=list(label_names))
  text = report(r, p, digits=digits, zero_division=0, **kw)
  return text, report(r, p, output_dict=True, zero_division=0, **kw)


METRICS = {
    "accuracy": accuracy,
    "f1": lambda p, r: f1(p, r, average="binary"),
    "macro_f1": lambda p, r: f1(p, r, average="macro"),
    "micro_f1": lambda p, r: f1(p, r, average="micro"),
    "matthews_corrcoef": matthews_corrcoef,
    "pearson_spearman": pearson_spearman,
    "ner_span_f1": ner_span_f1,
    "squad": squad_em_f1,
    "bleu": bleu,
    "rouge": rouge,
    "perplexity": perplexity,
}


def compute(names: Sequence[str], predictions, references) -> dict[str, float]:
  """Runs each named metric; dict-valued metrics are flattened as `name/key` unless the key is self-evident
  (pearson_spearman -> pearson, spearman; squad -> exact_match, f1; ner_span_f1 -> precision, recall, f1)."""
  out = {}
  for name in names:
    if name not in METRICS:
      raise ValueError(f"unknown metric {name!r}; available: {sorted(METRICS)}")
    value = METRICS[name](predictions, references)
    out.update(value if isinstance(value, dict) else {name: value})
  return out
