"""Training curves from metrics.jsonl: train loss (left axis) and eval metrics (right axis) per step."""

from __future__ import annotations

import json
from pathlib import Path


def plot_metrics(metrics_file: str | Path, out: str | Path, eval_metric: str | None = None) -> Path | None:
  """Writes a PNG with the train loss and one eval metric (default: the first non-loss one); None if empty."""
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  path = Path(metrics_file)
  if not path.exists():
    return None
  rows = [json.loads(l) for l in path.read_text().splitlines() if l.strip()]
  train = [(r["step"], r["loss"]) for r in rows if r["split"] == "train" and "loss" in r]
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
