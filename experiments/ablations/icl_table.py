"""Demonstration label corruption (sweep_icl*.py): ICL run directories -> summary.json, summary.md and a plot.

  python -m experiments.ablations.icl_table runs/ablations_cpu/icl_corruption --out=experiments/ablations/results/cpu/icl_corruption

The icl_eval job's results.json holds accuracy per k (seeds averaged), and the rows wanted here (per k, with the
spread over seeds and the prediction balance) are not launch.aggregate's, so these runs are summarised here: one
row per (percent of incorrect labels, k) with acc, acc_norm, acc_mi (and acc_calibrated when the run calibrated)
and pred_frac_1, each with its sample std over seeds (ddof=1, as launch.aggregate's; null for one seed) and its
per-seed values, the number of queries and seeds, plus the command, device (where the runs record it) and versions
like launch.aggregate's summary.json.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

import numpy as np

from launch.aggregate import versions
from lightft_jax.icl.prompts import corruption_percent

METRICS = ("acc", "acc_norm", "acc_mi", "acc_calibrated", "pred_frac_1")


def load(run: Path) -> list[dict]:
  config = json.loads((run / "config.json").read_text())
  results = json.loads((run / "results.json").read_text())
  mode = config["icl"]["label_mode"]
  percent = corruption_percent(mode)
  if percent is None:
    percent = {"gold": 0}.get(mode)
  rows = []
  for k, metrics in results["per_k"].items():
    row = {"label_mode": mode, "incorrect_percent": percent, "k": int(k), "num_queries": results["num_queries"],
           "n_seeds": len(results["seeds"]), "model": results["model"],
           "per_query_demos": bool(config["icl"]["per_query_demos"]), "device": results.get("device"),
           "run": str(run)}
    per_seed = results["per_seed"][k]
    for m in METRICS:
      if m in metrics:  # the sample std over seeds (ddof=1), as launch.aggregate's rows; None for one seed
        values = [s[m] for s in per_seed]
        row[m], row[f"{m}_std"] = metrics[m], float(np.std(values, ddof=1)) if len(values) > 1 else None
        row[f"{m}_per_seed"] = values
    rows.append(row)
  return rows


def _pm(r: dict, m: str) -> str:
  std = r.get(f"{m}_std")
  return f"{r[m]:.3f}" + (f" ± {std:.3f}" if std is not None else "")


def markdown(rows: list[dict]) -> str:
  cols = [m for m in METRICS if any(m in r for r in rows)]
  lines = ["| incorrect labels | k | " + " | ".join(cols) + " | queries | seeds |",
           "|---:|---:|" + "---:|" * len(cols) + "---:|---:|"]
  for r in rows:
    vals = " | ".join(_pm(r, m) if m in r else "" for m in cols)
    lines.append(f"| {r['incorrect_percent']}% | {r['k']} | {vals} | {r['num_queries']} | {r['n_seeds']} |")
  return "\n".join(lines)


def plot(rows: list[dict], path: Path) -> None:
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  fig, ax = plt.subplots(figsize=(6, 4))
  for k in sorted({r["k"] for r in rows}):
    pts = sorted((r["incorrect_percent"], r["acc"], r.get("acc_std") or 0.0) for r in rows if r["k"] == k)
    ax.errorbar([p[0] for p in pts], [p[1] for p in pts], yerr=[p[2] for p in pts], marker="o", capsize=3,
                label=f"k={k}")
  ax.axhline(0.5, color="grey", lw=0.8, ls="--")
  ax.set_xlabel("demonstrations with an incorrect label (%)")
  ax.set_ylabel("accuracy")
  ax.set_title(f"{rows[0]['model']}, Rotten Tomatoes, {rows[0]['num_queries']} queries")
  ax.legend()
  ax.grid(alpha=0.3)
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)


def main(argv=None) -> int:
  ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  ap.add_argument("root", help="the sweep's run directories' root")
  ap.add_argument("--out", required=True)
  args = ap.parse_args(argv)
  runs = sorted(d for d in Path(args.root).iterdir() if (d / "config.json").exists())
  missing = [str(d) for d in runs if not (d / "results.json").exists()]
  if missing or not runs:
    raise SystemExit(f"no finished ICL runs under {args.root}" if not runs else
                     "these runs have not finished (no results.json):\n  " + "\n  ".join(missing))
  rows = sorted((r for d in runs for r in load(d)), key=lambda r: (r["k"], r["incorrect_percent"]))
  out = Path(args.out)
  out.mkdir(parents=True, exist_ok=True)
  command = " ".join(shlex.quote(a) for a in ["python", "-m", "experiments.ablations.icl_table", *(argv or sys.argv[1:])])
  devices = sorted({str(r["device"]) for r in rows if r["device"]})
  summary = {"rows": rows, "command": command, "device": "; ".join(devices) or "not recorded by the runs",
             "versions": versions()}
  (out / "summary.json").write_text(json.dumps(summary, indent=2, allow_nan=False) + "\n")
  (out / "summary.md").write_text(f"`{command}`\n\n{markdown(rows)}\n")
  plot(rows, out / "accuracy_vs_corruption.png")
  print(markdown(rows))
  return 0


if __name__ == "__main__":
  sys.exit(main())
