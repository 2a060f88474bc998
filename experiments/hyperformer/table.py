"""The README table of experiments/hyperformer from results/cpu/summary.json (launch.aggregate of the sweep).

  python -m experiments.hyperformer.table            # prints the table
  python -m experiments.hyperformer.table --write    # per_task_accuracy.png, and replaces the table between the
                                                     # markers in this folder's README.md
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from experiments import marked

HERE = Path(__file__).parent
TASKS = ("rotten_tomatoes", "convention_party", "debate_party")  # configs/multitask.py DEFAULT_TASKS
LABELS = {"hyper_adapter": "hyper_adapter (one hypernetwork -> adapters)",
          "hyper_lora": "hyper_lora (one hypernetwork -> LoRA)", "compose": "per-task adapters",
          "adapter": "one shared adapter", "moe_lora": "MoE-LoRA (task router)", "full": "full fine-tuning"}


def table(summary: dict) -> str:
  rows = sorted(summary["rows"], key=lambda r: -r["test/average_mean"])
  head = ("| method | trainable params | per task | " + " | ".join(f"{t} acc (F1)" for t in TASKS)
          + " | test average acc | validation average (256 / task) | ms / step |")
  lines = [head, "|---|---:|---:|" + "---:|" * len(TASKS) + "---:|---:|---:|"]
  for r in rows:
    per_task = " | ".join(f"{r[f'test/{t}/accuracy_mean']:.4f} ({r[f'test/{t}/macro_f1_mean']:.4f})" for t in TASKS)
    lines.append(f"| {LABELS.get(r['peft.method'], r['peft.method'])} | {r['trainable_params']:,} | "
                 f"{round(r['trainable_params'] / len(TASKS)):,} | {per_task} | {r['test/average_mean']:.4f} | "
                 f"{r['eval/average_mean']:.4f} | {r['ms_per_step']:.0f} |")
  return "\n".join(lines)


def plot(summary: dict, path: Path) -> None:
  """Test accuracy per task and the average, one group of bars per method."""
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  import numpy as np
  rows = sorted(summary["rows"], key=lambda r: -r["test/average_mean"])
  cols = [f"test/{t}/accuracy_mean" for t in TASKS] + ["test/average_mean"]
  names = list(TASKS) + ["average"]
  fig, ax = plt.subplots(figsize=(9, 4.5))
  width = 0.8 / len(rows)
  for i, r in enumerate(rows):
    ax.bar(np.arange(len(cols)) + i * width, [r[c] for c in cols], width,
           label=f"{LABELS.get(r['peft.method'], r['peft.method'])} ({r['trainable_params']:,})")
  ax.set_xticks(np.arange(len(cols)) + 0.4 - width / 2, names)
  ax.set_ylabel("test accuracy")
  ax.set_ylim(0.3, 1.0)
  ax.set_title("all-MiniLM-L6-v2, 3-task mixture, 100 steps, batch 32, one seed")
  ax.legend(fontsize=7, loc="upper right")
  ax.grid(axis="y", alpha=0.3)
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)


def main() -> None:
  summary = json.loads((HERE / "results" / "cpu" / "summary.json").read_text())
  text = table(summary)
  if "--write" in sys.argv:
    plot(summary, HERE / "results" / "cpu" / "per_task_accuracy.png")
    marked.write(HERE / "README.md", text)
  print(text)


if __name__ == "__main__":
  main()
