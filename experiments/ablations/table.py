"""The README tables of experiments/ablations from results/cpu/<family>/summary.json (launch.aggregate of each
family's sweeps: test accuracy mean ± std over the seeds, the median of the runs' step times; every setting from
this experiment's own runs, including those peft_methods' 100-step table also has), and one plot per family.

  python -m experiments.ablations.table            # prints the tables
  python -m experiments.ablations.table --write    # ablations.png, and replaces each table between the markers
                                                   # <!-- FAMILY: begin --> / <!-- FAMILY: end --> of README.md
                                                   # (FAMILY: lora, adapter, prefix, layers, icl)
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

from experiments import marked

HERE = Path(__file__).parent
RESULTS = HERE / "results" / "cpu"
FAMILIES = ("lora", "adapter", "prefix", "layers")
TARGETS = {"qv": "q,v", "attn": "all attention", "all_linear": "all linear"}


def setting(family: str, r: dict) -> str:
  if family == "lora":
    return f"r={r['peft.r']}, {TARGETS.get(r['peft.targets'], r['peft.targets'])}"
  if family == "adapter":
    return f"reduction factor {r['peft.reduction_factor']}"
  if family == "prefix":
    kind = "reparameterised" if r["peft.projection"] else "plain"
    return f"{r['peft.num_tokens']} tokens, {kind}, lr {r['optimizer.lr']:g}"
  return f"top {r['peft.top_k']} blocks"


def sort_key(family: str, r: dict):
  if family == "lora":
    return (list(TARGETS).index(r["peft.targets"]) if r["peft.targets"] in TARGETS else 9, r["peft.r"])
  if family == "adapter":
    return (r["peft.reduction_factor"],)
  if family == "prefix":
    return (bool(r["peft.projection"]), r["peft.num_tokens"], r["optimizer.lr"])
  return (r["peft.top_k"],)


def rows_of(family: str) -> list[dict]:
  """This family's summary rows, in the table's order."""
  rows = json.loads((RESULTS / family / "summary.json").read_text())["rows"]
  return sorted(rows, key=lambda r: sort_key(family, r))


def ms_per_step(r: dict) -> float:
  """The median of the runs' step times (one run's, under other jobs' load, does not move it)."""
  return statistics.median([x["ms_per_step"] for x in r["per_run"]]) if r.get("per_run") else r["ms_per_step"]


def _pm(r: dict, metric: str) -> str:
  std = r.get(f"{metric}_std")
  return f"{r[f'{metric}_mean']:.4f}" + (f" ± {std:.4f}" if std is not None else "")


def table(family: str) -> str:
  lines = ["| setting | trainable params | seeds | test accuracy | test macro F1 | validation accuracy (256) | "
           "ms / step (median) |", "|---|---:|---:|---:|---:|---:|---:|"]
  for r in rows_of(family):
    lines.append(f"| {setting(family, r)} | {r['trainable_params']:,} | {r['n_seeds']} | "
                 f"{_pm(r, 'test/accuracy')} | {_pm(r, 'test/macro_f1')} | {_pm(r, 'eval/accuracy')} | "
                 f"{ms_per_step(r):.0f} |")
  return "\n".join(lines)


def plot(path: Path) -> None:
  """Test accuracy against trainable parameters (log x), one panel per family."""
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  rows = {f: rows_of(f) for f in FAMILIES}
  fig, axes = plt.subplots(1, len(FAMILIES), figsize=(4 * len(FAMILIES), 3.6), sharey=True)
  for ax, family in zip(axes, FAMILIES):
    for r in rows[family]:
      x, y = r["trainable_params"], r["test/accuracy_mean"]
      ax.errorbar(x, y, yerr=r.get("test/accuracy_std") or 0, fmt="none", ecolor="tab:blue", alpha=0.5)
      ax.scatter(x, y, color="tab:blue")
      ax.annotate(setting(family, r).replace(", lr", "\nlr"), (x, y), textcoords="offset points", xytext=(3, 3),
                  fontsize=6)
    ax.set_xscale("log")
    ax.set_title(family)
    ax.set_xlabel("trainable parameters")
    ax.grid(alpha=0.3)
  axes[0].set_ylabel("test accuracy")
  every = [r for f in FAMILIES for r in rows[f]]
  seeds = sorted({r["n_seeds"] for r in every})
  fig.suptitle(f"all-MiniLM-L6-v2, Rotten Tomatoes, 100 steps, batch 32, mean ± std over "
               f"{'-'.join(map(str, (seeds[0], seeds[-1]))) if len(seeds) > 1 else seeds[0]} seed(s)", fontsize=9)
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)


def icl_table() -> str:
  """The label-corruption table, from results/cpu/icl_corruption/summary.json (experiments.ablations.icl_table)."""
  from experiments.ablations.icl_table import markdown
  path = RESULTS / "icl_corruption" / "summary.json"
  return markdown(json.loads(path.read_text())["rows"]) if path.exists() else "(not run)"


def main() -> None:
  texts = {f: table(f) for f in FAMILIES}
  texts["icl"] = icl_table()
  if "--write" in sys.argv:
    plot(RESULTS / "ablations.png")
    path = HERE / "README.md"
    text = path.read_text()
    for f, t in texts.items():
      text = marked.replace(text, t, f)
    path.write_text(text)
  for f, t in texts.items():
    print(f"## {f}\n{t}\n")


if __name__ == "__main__":
  main()
