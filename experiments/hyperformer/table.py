"""The README tables of experiments/hyperformer: the mixture (results/cpu/summary.json, launch.aggregate of
sweep_cpu.py) and, where its summary exists, the unseen task (results/cpu_unseen/summary.json, run_unseen.sh).

  python -m experiments.hyperformer.table            # prints the tables
  python -m experiments.hyperformer.table --write    # per_task_accuracy.png, and replaces the tables between the
                                                     # markers (`table`, `unseen`) in this folder's README.md
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


def _pm(r: dict, key: str) -> str:
  """mean, and ± the sample std over seeds where the row has more than one."""
  std = r.get(f"{key}_std")
  return f"{r[f'{key}_mean']:.4f}" + (f" ± {std:.4f}" if std is not None else "")


def table(summary: dict) -> str:
  rows = sorted(summary["rows"], key=lambda r: -r["test/average_mean"])
  head = ("| method | seeds | trainable params | per task | " + " | ".join(f"{t} acc (F1)" for t in TASKS)
          + " | test average acc | validation average (256 / task) | ms / step |")
  lines = [head, "|---|---:|---:|---:|" + "---:|" * len(TASKS) + "---:|---:|---:|"]
  for r in rows:
    per_task = " | ".join(f"{_pm(r, f'test/{t}/accuracy')} ({r[f'test/{t}/macro_f1_mean']:.4f})" for t in TASKS)
    lines.append(f"| {LABELS.get(r['peft.method'], r['peft.method'])} | {r['n_seeds']} | {r['trainable_params']:,} | "
                 f"{round(r['trainable_params'] / len(TASKS)):,} | {per_task} | {_pm(r, 'test/average')} | "
                 f"{_pm(r, 'eval/average')} | {r['ms_per_step']:.0f} |")
  return "\n".join(lines)


UNSEEN = "convention_party"  # sweep_unseen.HELD_OUT
ADAPTER_K_STEPS = 50  # sweep_unseen_cpu_adapter.py: steps of the adapter trained on the 16 examples
UNSEEN_LABELS = {"hyper_adapter": "hyper_adapter, context-conditioned (trained on the 2 other tasks)",
                 "hyper_lora": "hyper_lora, context-conditioned (trained on the 2 other tasks)",
                 "moe_lora": "MoE-LoRA, context router (trained on the 2 other tasks)"}


def _num(r: dict, key: str, fmt: str = ".4f") -> str:
  v = r.get(f"{key}_mean")
  if v is None:
    return "-"
  std = r.get(f"{key}_std")
  return f"{v:{fmt}}" + (f" ± {std:{fmt}}" if std is not None else "")


def unseen_table(summary: dict) -> str:
  """convention_party from k=16 of its examples: the context-conditioned methods (no gradient step on it), an
  adapter trained on 16 examples, and ICL with SmolLM2-135M (acc, macro F1 and calibrated acc), all on the 306
  test queries."""
  head = ("| method | convention_party examples used | gradient steps on convention_party | trainable params | "
          "test queries | test acc | test macro F1 | ICL calibrated acc | seeds |")
  lines = [head, "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
  order = {"train": 0, "icl_eval": 1}
  for r in sorted(summary["rows"], key=lambda r: (order.get(r["job"], 2), r["task.name"] != "mixture",
                                                   str(r["peft.method"]))):
    if r["job"] == "icl_eval":
      lines.append(f"| ICL, SmolLM2-135M-Instruct, 16 demonstrations | 16 (in the prompt) | 0 | 0 | 306 (all) | "
                   f"{_num(r, 'test/k16/acc')} | {_num(r, 'test/k16/macro_f1')} | {_num(r, 'test/k16/acc_calibrated')} "
                   f"| {r['n_seeds']} |")
    elif r["task.name"] == "mixture":
      lines.append(f"| {UNSEEN_LABELS.get(r['peft.method'], r['peft.method'])} | 16 (mean embedding, context) | 0 | "
                   f"{r['trainable_params']:,} | 306 (all) | {_num(r, f'test/held_out/{UNSEEN}/accuracy')} | "
                   f"{_num(r, f'test/held_out/{UNSEEN}/macro_f1')} | - | {r['n_seeds']} |")
    else:
      lines.append(f"| one adapter trained on the 16 examples (all-MiniLM-L6-v2) | 16 (training set) | "
                   f"{ADAPTER_K_STEPS} | {r['trainable_params']:,} | 306 (all) | {_num(r, 'test/accuracy')} | "
                   f"{_num(r, 'test/macro_f1')} | - | {r['n_seeds']} |")
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
  ax.set_title("all-MiniLM-L6-v2, 3-task mixture, 100 steps, batch 32 (mean over the seeds run)")
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
  unseen = HERE / "results" / "cpu_unseen" / "summary.json"
  if unseen.exists():
    text = unseen_table(json.loads(unseen.read_text()))
    if "--write" in sys.argv:
      marked.write(HERE / "README.md", text, "unseen")
    print("\n" + text)


if __name__ == "__main__":
  main()
