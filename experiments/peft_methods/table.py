"""The README table of experiments/peft_methods from results/cpu/summary.json (the aggregate of the sweep).

  python -m experiments.peft_methods.table            # prints the table
  python -m experiments.peft_methods.table --write    # accuracy_vs_params.png, and replaces the table between the markers in this folder's
                                                      # README.md and the project README.md
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from experiments import marked

HERE = Path(__file__).parent


def label(row: dict) -> str:
  """The method as the sweep names it (sweep.METHODS), from the run's PEFT keys."""
  m = row["peft.method"]
  if m == "adapter":
    return "parallel adapter" if row["peft.placement"] == "parallel" else f"{row['peft.config']} adapter"
  if m == "prefix":
    return "prefix (reparameterised)" if row["peft.projection"] else "prefix"
  if m == "lora":
    return "dora (r=8, q,v)" if row["peft.dora"] else "rslora (r=8, q,v)" if row["peft.rslora"] else "lora (r=8, q,v)"
  return {"compose": "mam (prefix + parallel adapter)", "head": "head-only", "layers": "layers (top 2)"}.get(m, m)


def table(summary: dict) -> str:
  rows = sorted(summary["rows"], key=lambda r: -r["test/accuracy_mean"])
  lines = ["| method | trainable params | test accuracy | test macro F1 | validation accuracy (256) | ms / step |",
           "|---|---:|---:|---:|---:|---:|"]
  for r in rows:
    lines.append(f"| {label(r)} | {r['trainable_params']:,} | {r['test/accuracy_mean']:.4f} | "
                 f"{r['test/macro_f1_mean']:.4f} | {r['eval/accuracy_mean']:.4f} | {r['ms_per_step']:.0f} |")
  return "\n".join(lines)


def plot(summary: dict, path: Path) -> None:
  """Test accuracy against trainable parameters (log x), one labelled point per method."""
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  fig, ax = plt.subplots(figsize=(8, 5))
  for r in summary["rows"]:
    x, y = r["trainable_params"], r["test/accuracy_mean"]
    ax.scatter(x, y, color="tab:red" if r["peft.method"] == "full" else "tab:blue")
    ax.annotate(label(r), (x, y), textcoords="offset points", xytext=(4, 3), fontsize=7)
  ax.set_xscale("log")
  ax.set_xlabel("trainable parameters")
  ax.set_ylabel("test accuracy")
  ax.set_title("all-MiniLM-L6-v2, Rotten Tomatoes, 100 steps, batch 32, one seed")
  ax.grid(alpha=0.3)
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)


def main() -> None:
  summary = json.loads((HERE / "results" / "cpu" / "summary.json").read_text())
  text = table(summary)
  if "--write" in sys.argv:
    plot(summary, HERE / "results" / "cpu" / "accuracy_vs_params.png")
    for path in (HERE / "README.md", HERE.parents[1] / "README.md"):
      marked.write(path, text)
  print(text)


if __name__ == "__main__":
  main()
