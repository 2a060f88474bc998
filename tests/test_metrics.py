"""Metrics against hand-computed values."""

import collections
import math
import re
import string

import numpy as np
import pytest

from lightft_jax import metrics as M


def test_accuracy_and_f1():
  p, r = [1, 0, 1, 1], [1, 1, 1, 0]
  assert M.accuracy(p, r) == 0.5
  # class 1: tp=2 fp=1 fn=1 -> F1 2/3; class 0: tp=0 -> F1 0; macro 1/3; micro = accuracy 0.5
  assert M.f1(p, r, "binary") == pytest.approx(2 / 3)
  assert M.f1(p, r, "macro") == pytest.approx(1 / 3)
  assert M.f1(p, r, "micro") == pytest.approx(0.5)
  with pytest.raises(ValueError, match="differ in length"):
    M.accuracy([1], [1, 0])
  with pytest.raises(ValueError, match="macro, micro"):
    M.f1(p, r, "samples")


def test_matthews_corrcoef():
  p, r = [1, 0, 1, 1], [1, 1, 1, 0]
  tp, tn, fp, fn = 2, 0, 1, 1
  want = (tp * tn - fp * fn) / math.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
  assert M.matthews_corrcoef(p, r) == pytest.approx(want)
  assert M.matthews_corrcoef([0, 1, 0, 1], [0, 1, 0, 1]) == pytest.approx(1.0)


def test_pearson_spearman():
  out = M.pearson_spearman([1.0, 2.0, 3.0, 4.0], [1.0, 4.0, 9.0, 16.0])
  assert out["spearman"] == pytest.approx(1.0)  # monotone
  x, y = np.array([1, 2, 3, 4.0]), np.array([1, 4, 9, 16.0])
  xc, yc = x - x.mean(), y - y.mean()
  assert out["pearson"] == pytest.approx((xc @ yc) / np.sqrt((xc @ xc) * (yc @ yc)))


def test_ner_span_f1():
  ref = [["B-PER", "I-PER", "O", "B-LOC"], ["B-ORG", "O"]]
  pred = [["B-PER", "I-PER", "O", "B-ORG"], ["B-ORG", "O"]]
  # gold spans: PER, LOC, ORG; predicted: PER, ORG(wrong), ORG -> tp 2, precision 2/3, recall 2/3
  out = M.ner_span_f1(pred, ref)
  assert out["precision"] == pytest.approx(2 / 3) and out["recall"] == pytest.approx(2 / 3)
  assert out["f1"] == pytest.approx(2 / 3)
  # a boundary error makes the span wrong even though most tags agree
  assert M.ner_span_f1([["B-PER", "O"]], [["B-PER", "I-PER"]])["f1"] == 0.0


def test_squad_official_normalisation():
  assert M.normalize_answer("The  Eiffel Tower!") == "eiffel tower"
  out = M.squad_em_f1(["the Eiffel tower", "Paris France"], [["Eiffel Tower"], ["Paris", "in Paris"]])
  # q1 exact after normalisation; q2: vs "Paris" p=1/2 r=1 -> F1 2/3, vs "in Paris" p=1/2 r=1/2 -> 1/2
  assert out["exact_match"] == pytest.approx(50.0)
  assert out["f1"] == pytest.approx(100 * (1 + 2 / 3) / 2)


# The official SQuAD v1.1 evaluation script (evaluate-v1.1.py), its scoring functions verbatim: the oracle.
def _official_normalize_answer(s):
  def remove_articles(text):
    return re.sub(r"\b(a|an|the)\b", " ", text)

  def white_space_fix(text):
    return " ".join(text.split())

  def remove_punc(text):
    exclude = set(string.punctuation)
    return "".join(ch for ch in text if ch not in exclude)

  def lower(text):
    return text.lower()

  return white_space_fix(remove_articles(remove_punc(lower(s))))


def _official_f1_score(prediction, ground_truth):
  prediction_tokens = _official_normalize_answer(prediction).split()
  ground_truth_tokens = _official_normalize_answer(ground_truth).split()
  common = collections.Counter(prediction_tokens) & collections.Counter(ground_truth_tokens)
  num_same = sum(common.values())
  if num_same == 0:
    return 0
  precision = 1.0 * num_same / len(prediction_tokens)
  recall = 1.0 * num_same / len(ground_truth_tokens)
  f1 = (2 * precision * recall) / (precision + recall)
  return f1


def _official_exact_match_score(prediction, ground_truth):
  return _official_normalize_answer(prediction) == _official_normalize_answer(ground_truth)


def _official_metric_max_over_ground_truths(metric_fn, prediction, ground_truths):
  scores_for_ground_truths = []
  for ground_truth in ground_truths:
    score = metric_fn(prediction, ground_truth)
    scores_for_ground_truths.append(score)
  return max(scores_for_ground_truths)


def _official_evaluate(predictions, golds):
  f1 = exact_match = 0
  for prediction, ground_truths in zip(predictions, golds):
    exact_match += _official_metric_max_over_ground_truths(_official_exact_match_score, prediction, ground_truths)
    f1 += _official_metric_max_over_ground_truths(_official_f1_score, prediction, ground_truths)
  return {"exact_match": 100.0 * exact_match / len(predictions), "f1": 100.0 * f1 / len(predictions)}


# Hand-made cases: several gold answers (the best one counts, whichever position it has), articles,
# punctuation, case and whitespace, partial overlaps, repeated tokens, no overlap, empty prediction.
SQUAD_CASES = [
    ("Denver Broncos", ["Denver Broncos", "Broncos", "The Denver Broncos"]),
    ("the Broncos", ["Carolina Panthers", "Broncos"]),  # only the second gold matches (after "the")
    ("Santa Clara, California", ["Levi's Stadium", "Santa Clara, California.", "Levi's Stadium in Santa Clara"]),
    ("U.S. Army", ["US Army", "the army"]),  # punctuation removed inside words: "us army"
    ("an apple a day", ["apple day"]),  # articles dropped
    ("  Paris\tFrance ", ["paris france"]),
    ("Paris Paris Paris", ["Paris"]),  # repeated tokens: precision 1/3
    ("1990s and 2000s", ["the 1990s", "2000s and 2010s", "1980s"]),  # partial overlaps; max over golds
    ("Beyoncé's debut", ["Beyonce's debut", "debut album"]),
    ("", ["something"]),
    ("nothing in common", ["entirely different words"]),
    ("the", ["a"]),  # both normalise to "": exact match, F1 0 (no tokens)
]


def test_squad_matches_the_official_script_on_hand_made_cases():
  preds, golds = [p for p, _ in SQUAD_CASES], [g for _, g in SQUAD_CASES]
  ours, official = M.squad_em_f1(preds, golds), _official_evaluate(preds, golds)
  assert ours["exact_match"] == pytest.approx(official["exact_match"], abs=1e-12)
  assert ours["f1"] == pytest.approx(official["f1"], abs=1e-12)
  for pred, gold in SQUAD_CASES:  # and question by question
    one, ref = M.squad_em_f1([pred], [gold]), _official_evaluate([pred], [gold])
    assert one == pytest.approx(ref, abs=1e-12), (pred, gold)
    assert M.normalize_answer(pred) == _official_normalize_answer(pred)
  # Hand values: the second gold answer carries case 2; case 4 is exact; case 7 has F1 2 * (1/3) / (4/3) = 1/2.
  assert M.squad_em_f1(["the Broncos"], [["Carolina Panthers", "Broncos"]])["exact_match"] == 100.0
  assert M.squad_em_f1(["U.S. Army"], [["US Army"]])["exact_match"] == 100.0
  assert M.squad_em_f1(["Paris Paris Paris"], [["Paris"]])["f1"] == pytest.approx(50.0)
  # Only the first gold answer (what the QA evaluation used to compare with) would have missed case 2.
  assert M.squad_em_f1(["the Broncos"], [["Carolina Panthers"]])["exact_match"] == 0.0


def test_squad_needs_gold_answers():
  with pytest.raises(ValueError, match="question 1 has no gold answers"):
    M.squad_em_f1(["a", "b"], [["a"], []])


def test_bleu_and_rouge():
  assert M.bleu(["the cat sat on the mat"], ["the cat sat on the mat"]) == pytest.approx(100.0)
  assert M.bleu(["a b c d"], ["w x y z"]) == pytest.approx(0.0)
  r = M.rouge(["the cat sat"], ["the cat sat down"], types=("rouge1", "rouge2"))
  # rouge1: p=3/3 r=3/4 -> 6/7; rouge2: bigrams 2 of 2 vs 3 -> p=1 r=2/3 -> 0.8
  assert r["rouge1"] == pytest.approx(6 / 7) and r["rouge2"] == pytest.approx(0.8)


def test_perplexity_and_normalized_squared_error():
  assert M.perplexity([math.log(2), math.log(8), 123.0], [1, 1, 0]) == pytest.approx(4.0)
  assert M.normalized_squared_error([1.0, 3.0], [0.0, 0.0], dim=5) == pytest.approx(5 / 5)
  with pytest.raises(ValueError, match="at least one"):
    M.perplexity([1.0], [0])


def test_classification_report():
  text, d = M.classification_report([1, 0, 1, 1], [1, 1, 1, 0], ["neg", "pos"])
  assert "neg" in text and "pos" in text
  assert d["pos"]["precision"] == pytest.approx(2 / 3) and d["pos"]["recall"] == pytest.approx(2 / 3)
  assert d["neg"]["support"] == 1 and d["accuracy"] == pytest.approx(0.5)


def test_compute_unknown_metric():
  with pytest.raises(ValueError, match="available"):
    M.compute(["nope"], [1], [1])
