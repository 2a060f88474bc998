"""lm_finetune: perplexity before / after per method from the committed JSON.

  python -m experiments.lm_finetune.table --write

The table reads RESULTS/summary.json (`python -m launch.aggregate --copy-runs`: validation and test perplexity
after training, trainable parameters, ms / step) and each run's results.json `eval_at_start` in RESULTS/runs/<name>/
(copied there by --copy-runs)
(validation perplexity before the first step, on the same validation rows). --write puts the table between the
markers of this folder's README.md and writes RESULTS/perplexity.png.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from experiments import marked

HERE = Path(__file__).parent
LABEL = {"lora": "LoRA (r=8, every linear layer)", "full": "full fine-tuning"}


def before(results_dir: Path, row: dict) -> list[float]:
  """Validation perplexity before the first step of each run of the row (from the committed copies)."""
  out = []
  for run in row["runs"]:
    res = json.loads((results_dir / "runs" / Path(run).name / "results.json").read_text())
    out.append(res["eval_at_start"]["perplexity"])
  return out


def rows(results_dir: Path) -> list[dict]:
  summary = json.loads((results_dir / "summary.json").read_text())
  out = []
  for r in summary["rows"]:
    b = before(results_dir, r)
    out.append({"method": r["peft.method"], "n_seeds": r["n_seeds"], "trainable_params": r["trainable_params"],
                "eval_perplexity_before": sum(b) / len(b), "eval_perplexity_after": r["eval/perplexity_mean"],
                "eval_perplexity_after_std": r["eval/perplexity_std"], "test_perplexity_after": r["test/perplexity_mean"],
                "test_perplexity_after_std": r["test/perplexity_std"], "ms_per_step": r["ms_per_step"]})
  return sorted(out, key=lambda r: r["trainable_params"])


def _pm(mean: float, std: float | None) -> str:
  return f"{mean:.2f}" if std is None else f"{mean:.2f} ± {std:.2f}"


def table(rs: list[dict]) -> str:
  """Perplexities after training as mean ± standard deviation over seeds where a row has several."""
  lines = ["| method | trainable params | seeds | validation ppl before | validation ppl after | test ppl after | "
           "ms / step |", "|---|---:|---:|---:|---:|---:|---:|"]
  for r in rs:
    lines.append(f"| {LABEL.get(r['method'], r['method'])} | {r['trainable_params']:,} | {r['n_seeds']} | "
                 f"{r['eval_perplexity_before']:.2f} | {_pm(r['eval_perplexity_after'], r['eval_perplexity_after_std'])} | "
                 f"{_pm(r['test_perplexity_after'], r['test_perplexity_after_std'])} | {r['ms_per_step']:.0f} |")
  return "\n".join(lines)


def plot(rs: list[dict], path: Path) -> None:
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  fig, ax = plt.subplots(figsize=(6, 4))
  names = [LABEL.get(r["method"], r["method"]) for r in rs]
  x = range(len(rs))
  ax.bar([i - 0.2 for i in x], [r["eval_perplexity_before"] for r in rs], 0.4, label="validation, before")
  ax.bar([i + 0.2 for i in x], [r["eval_perplexity_after"] for r in rs], 0.4, label="validation, after")
  ax.set_xticks(list(x), names, fontsize=8)
  ax.set_ylabel("perplexity")
  ax.set_title("SmolLM2-135M on Rotten Tomatoes snippets as text", fontsize=10)
  ax.legend(fontsize=8)
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)


def main(argv=None) -> None:
  argv = sys.argv[1:] if argv is None else argv
  ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  ap.add_argument("--results", default=str(HERE / "results" / "cpu"))
  ap.add_argument("--write", action="store_true")
  args = ap.parse_args(argv)
  results = Path(args.results)
  rs = rows(results)
  text = table(rs)
  if args.write:
    plot(rs, results / "perplexity.png")
    marked.write(HERE / "README.md", text)
  print(text)


if __name__ == "__main__":
  main()
