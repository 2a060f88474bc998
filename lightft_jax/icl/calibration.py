"""Turning per-choice log-likelihoods into predictions: plain, length-normalised, PMI and calibrated.

All functions take `loglik` [N,C] (sum of log p(choice | context)) and return predictions [N] int.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

CONTENT_FREE_INPUTS = ("N/A", "", "[MASK]")


def predict(loglik: np.ndarray) -> np.ndarray:
  """argmax_c log p(choice_c | context)."""
  return np.argmax(loglik, -1)


def predict_length_normalised(loglik: np.ndarray, choice_texts: Sequence[str]) -> np.ndarray:
  """argmax of log-likelihood per character of the choice text (lm-evaluation-harness `acc_norm`)."""
  lengths = np.array([max(len(t), 1) for t in choice_texts], np.float64)
  return np.argmax(loglik / lengths, -1)


def predict_mutual_information(loglik: np.ndarray, loglik_unconditional: np.ndarray) -> np.ndarray:
  """argmax of log p(c | context) - log p(c | domain premise) (pointwise MI, Holtzman et al. 2021).

  loglik_unconditional: [C] or [N,C], each choice scored after the template's answer prefix alone.
  """
  return np.argmax(loglik - loglik_unconditional, -1)


def choice_probs(loglik: np.ndarray) -> np.ndarray:
  """p(choice) renormalised over the choices: softmax of the sequence log-likelihoods [.., C]."""
  x = np.asarray(loglik, np.float64)
  e = np.exp(x - x.max(-1, keepdims=True))
  return e / e.sum(-1, keepdims=True)


def content_free_prior(loglik_content_free: np.ndarray) -> np.ndarray:
  """Mean over content-free inputs ([M,C] log-likelihoods) of the renormalised choice probabilities [C]."""
  return choice_probs(loglik_content_free).mean(0)


def predict_calibrated(loglik: np.ndarray, prior: np.ndarray) -> np.ndarray:
  """Contextual calibration (Zhao et al. 2021): W = diag(prior)^-1, b = 0, prediction argmax W p.

  prior: [C] (one prompt) or [N,C] (each example's own demonstrations).
  """
  return np.argmax(choice_probs(loglik) / np.asarray(prior), -1)
