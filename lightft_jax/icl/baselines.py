"""Regression baselines that read the same in-context examples as the Transformer (Garg et al. 2022).

Every baseline maps (xs [B,n,d], ys [B,n]) to predictions [B,n], where prediction i uses only the
examples before i (prediction 0 sees none and is 0).
"""

from __future__ import annotations

import numpy as np
from sklearn.linear_model import Lasso


def _per_prefix(xs: np.ndarray, ys: np.ndarray, fit_predict) -> np.ndarray:
  b, n, _ = xs.shape
  preds = np.zeros((b, n))
  for i in range(1, n):
    preds[:, i] = fit_predict(xs[:, :i], ys[:, :i], xs[:, i])
  return preds


def least_squares(xs, ys):
  """Minimum-norm least squares (pseudo-inverse): exact once i >= d examples are seen."""
  return _per_prefix(xs, ys, lambda X, y, q: np.einsum("bd,bd->b", np.einsum("bdi,bi->bd", np.linalg.pinv(X), y), q))


def ridge(xs, ys, alpha: float = 0.1):
  """Ridge regression w = (X^T X + alpha I)^-1 X^T y."""
  def fp(X, y, q):
    d = X.shape[-1]
    w = np.linalg.solve(np.einsum("bid,bie->bde", X, X) + alpha * np.eye(d), np.einsum("bid,bi->bd", X, y)[..., None])[..., 0]
    return np.einsum("bd,bd->b", w, q)
  return _per_prefix(xs, ys, fp)


def nearest_neighbours(xs, ys, k: int = 3):
  """Mean label of the k nearest previous inputs (all of them while fewer than k are seen)."""
  def fp(X, y, q):
    dist = np.linalg.norm(X - q[:, None], axis=-1)
    idx = np.argsort(dist, axis=-1)[:, :k]
    return np.take_along_axis(y, idx, -1).mean(-1)
  return _per_prefix(xs, ys, fp)


def averaging(xs, ys):
  """w = mean_j y_j x_j (the 'averaging' estimator: least squares for isotropic inputs without the inverse)."""
  return _per_prefix(xs, ys, lambda X, y, q: np.einsum("bd,bd->b", np.einsum("bid,bi->bd", X, y) / X.shape[1], q))


def lasso(xs, ys, alpha: float = 0.01):
  """Lasso (scikit-learn, no intercept) fitted per prompt and prefix: the reference for sparse w."""
  def fp(X, y, q):
    out = np.zeros(X.shape[0])
    for r in range(X.shape[0]):
      w = Lasso(alpha=alpha, fit_intercept=False, max_iter=10000).fit(X[r], y[r]).coef_
      out[r] = q[r] @ w
    return out
  return _per_prefix(xs, ys, fp)


BASELINES = {"least_squares": least_squares, "ridge": ridge, "3_nearest_neighbours": nearest_neighbours,
             "averaging": averaging, "lasso": lasso}
