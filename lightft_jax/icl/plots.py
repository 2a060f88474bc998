"""Line plots of metric curves (accuracy against k, error against the number of in-context examples)."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def plot_curves(path: str | Path, xs: Sequence[float], curves: dict[str, Sequence[float]], *, xlabel: str,
                ylabel: str, title: str = "", chance: float | None = None, logy: bool = False) -> Path:
  """One line per entry of `curves` (name -> values at `xs`), an optional dashed chance line; saves a PNG."""
  fig, ax = plt.subplots(figsize=(6, 4))
  for name, ys in curves.items():
    ax.plot(list(xs), list(ys), marker="o", label=name)
  if chance is not None:
    ax.axhline(chance, color="gray", linestyle="--", label="chance")
  if logy:
    ax.set_yscale("log")
  ax.set_xlabel(xlabel)
  ax.set_ylabel(ylabel)
  ax.set_title(title, fontsize=9)
  ax.grid(alpha=0.3)
  ax.legend(fontsize=8)
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)
  return Path(path)
