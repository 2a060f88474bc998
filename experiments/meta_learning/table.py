"""meta_learning: held-out accuracy per meta-training algorithm from the committed summary.json.

  python -m experiments.meta_learning.table --write

The table reads RESULTS/summary.json (`python -m launch.aggregate`, grouped by train.objective and total_steps):
k-shot ICL accuracy on the held-out task (validation and test queries), and where the run evaluated
adaptation (reptile / fomaml objectives, and the no-meta-training row, which is evaluated as reptile) the test
accuracy before and after the inner SGD steps on support examples. --write puts it between the markers of this
folder's README.md.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from experiments import marked

HERE = Path(__file__).parent
LABEL = {"metaicl": "MetaICL", "reptile": "Reptile", "fomaml": "first-order MAML"}


def label(row: dict) -> str:
  if row["total_steps"] == 0:
    return "no meta-training (0 steps)"
  return f"{LABEL.get(row['train.objective'], row['train.objective'])} ({row['total_steps']} steps)"


def cell(row: dict, key: str) -> str:
  """mean ± sample std over seeds (the mean alone for one seed); — where the run did not evaluate it."""
  v, std = row.get(f"{key}_mean"), row.get(f"{key}_std")
  return "—" if v is None else f"{v:.3f}" + ("" if std is None else f" ± {std:.3f}")


def table(summary: dict) -> str:
  lines = ["| meta-training | trainable params | seeds | val k-shot acc | test k-shot acc | test acc before adaptation | "
           "test acc after adaptation | ms / step |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
  order = list(LABEL)
  for r in sorted(summary["rows"], key=lambda r: (r["total_steps"] > 0, order.index(r["train.objective"]))):
    ms = "—" if r["total_steps"] == 0 else f"{r['ms_per_step']:.0f}"
    lines.append(f"| {label(r)} | {r['trainable_params']:,} | {r['n_seeds']} | {cell(r, 'eval/icl_accuracy')} | "
                 f"{cell(r, 'test/icl_accuracy')} | {cell(r, 'test/acc_before')} | {cell(r, 'test/acc_after')} | "
                 f"{ms} |")
  return "\n".join(lines)


def main(argv=None) -> None:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--results", default=str(HERE / "results" / "cpu"))
  p.add_argument("--write", action="store_true", help="write the table into README.md between its markers")
  args = p.parse_args(argv)
  body = table(json.loads((Path(args.results) / "summary.json").read_text()))
  if args.write:
    marked.write(HERE / "README.md", body)
  print(body)


if __name__ == "__main__":
  main()
