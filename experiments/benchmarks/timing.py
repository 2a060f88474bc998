"""Alternating timer: ours and theirs take turns in one process, after warm-up, ABBA order."""

from __future__ import annotations

import statistics
import time
from typing import Callable


def time_alternating(fns: dict[str, Callable[[], object]], *, repeats: int, warmup: int,
                     inner: int, gap_s: float = 0.0) -> dict[str, list[float]]:
  """Seconds per call of each fn: `repeats` samples of `inner` back-to-back calls each.

  Each fn must wait for its device work before returning. The order flips every repeat (A B, B A, ...)
  so slow drifts of a shared machine hit both sides alike. `gap_s` > 0 leaves that many untimed idle seconds
  before every sample (one library's spinning worker threads settle before the other's call).
  """
  names = list(fns)
  for _ in range(warmup):
    for n in names:
      fns[n]()
  out: dict[str, list[float]] = {n: [] for n in names}
  for r in range(repeats):
    for n in (names if r % 2 == 0 else names[::-1]):
      if gap_s > 0:
        time.sleep(gap_s)
      t0 = time.perf_counter()
      for _ in range(inner):
        fns[n]()
      out[n].append((time.perf_counter() - t0) / inner)
  return out


def summarize(samples: list[float]) -> dict[str, float]:
  """Median, quartiles, min and max (seconds), and the interquartile range relative to the median."""
  q = statistics.quantiles(samples, n=4) if len(samples) > 1 else [samples[0]] * 3
  med = statistics.median(samples)
  return {"median_s": med, "p25_s": q[0], "p75_s": q[2], "min_s": min(samples), "max_s": max(samples),
          "iqr_rel": (q[2] - q[0]) / med, "n": len(samples)}
