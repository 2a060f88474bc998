"""Metrics against hand-computed values."""

import math

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
