"""Plots: metric curves (accuracy against k, error against the number of in-context examples) and training
curves from metrics.jsonl."""

from __future__ import annotations

import json
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


def plot_metrics(metrics_file: str | Path, out: str | Path, eval_metric: str | None = None) -> Path | None:
  """Writes a PNG with the train loss and one eval metric (default: the first non-loss one); None if empty."""
  path = Path(metrics_file)
  if not path.exists():
    return None
  rows = [json.loads(l) for l in path.read_text().splitlines() if l.strip()]
  train = [(r["step"], r["loss"]) for r in rows if r["split"] == "train" and r.get("loss") is not None]
  evals = [r for r in rows if r["split"] == "eval"]
  if not train:
    return None
  fig, ax = plt.subplots(figsize=(6, 3.5))
  ax.plot(*zip(*train), color="tab:blue", label="train loss")
  ax.set_xlabel("step")
  ax.set_ylabel("train loss", color="tab:blue")
  name = eval_metric or next((k for r in evals for k in r if k not in ("step", "split", "loss", "examples")), None)
  if name:
    ax2 = ax.twinx()
    pts = [(r["step"], r[name]) for r in evals if name in r]
    ax2.plot(*zip(*pts), "o-", color="tab:orange", label=f"eval {name}")
    ax2.set_ylabel(f"eval {name}", color="tab:orange")
  ax.set_title(path.parent.name)
  fig.tight_layout()
  fig.savefig(out, dpi=100)
  plt.close(fig)
  return Path(out)
