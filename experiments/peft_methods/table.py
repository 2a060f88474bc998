"""The README tables of experiments/peft_methods: every method at 100 steps from results/cpu/summary.json (the aggregate
of sweep_cpu.py and sweep_cpu_seeds.py, between the "table" markers); every method at the PyTorch reference's 600
steps from results/cpu_600/summary.json (the 600-step sweeps of run.sh, between the "table_600" markers), with
reparameterised prefix tuning's learning rates on validation between the "reparam_prefix_lr" markers
(results/cpu_600_prefix_lr/); between the "reference" markers, the three methods the PyTorch reference reports beside
its accuracy; between the "recipe" markers (this folder's README only), full fine-tuning with either recipe on either
side (results/cpu_600_hf/summary.json from sweep_cpu_hf_recipe.py, results/torch/*.json from reference_torch.py), and
between the "lora_recipe" markers LoRA's; between the "<method>_lr" markers (`lr_marker` of each method of
sweep_cpu_600_lr.py's RATES: lora_lr, full_lr, ...), those methods' learning rates on the whole validation split
(results/cpu_600_lr/ from sweep_cpu_600_lr.py).

  python -m experiments.peft_methods.table            # prints the tables
  python -m experiments.peft_methods.table --write    # results/{cpu,cpu_600}/accuracy_vs_params.png, and the tables
                                                      # between their markers in this folder's README.md (the
                                                      # project README.md: the 600-step and reference tables)
"""

from __future__ import annotations

import functools
import json
import sys
from pathlib import Path

from configs import quickstart
from experiments import marked
from launch.aggregate import best_row, place_labels

HERE = Path(__file__).parent


@functools.cache
def quickstart_lr(method: str) -> float:
  """The body learning rate configs/quickstart.py gives `method`: the table's, unless a row's optimizer.lr differs."""
  method = {"compose": "mam"}.get(method, method)  # MAM is a composition of two methods; the quickstart names it
  return quickstart.get_config(f"method={method},baselines=False").optimizer.lr


def label(row: dict) -> str:
  """The method as the sweep names it (sweep.METHODS), from the run's PEFT keys, naming its learning rate where
  that is not the quickstart's (a rate validation chose)."""
  m = row["peft.method"]
  lr = row.get("optimizer.lr", 0.0)
  if lr and lr != quickstart_lr(m) and not (m == "prefix" and row.get("peft.projection")):
    name = label({**row, "optimizer.lr": 0.0})
    return name[:-1] + f", lr {lr:g})" if name.endswith(")") else f"{name} (lr {lr:g})"
  if m == "adapter":
    return "parallel adapter" if row["peft.placement"] == "parallel" else f"{row['peft.config']} adapter"
  if m == "prefix":  # reparameterised: at more than one learning rate in the 600-step table
    lr = f", lr {row['optimizer.lr']:g}" if row.get("optimizer.lr") else ""
    return f"prefix (reparameterised{lr})" if row.get("peft.projection") else "prefix"
  if m == "lora":
    return "dora (r=8, q,v)" if row["peft.dora"] else "rslora (r=8, q,v)" if row["peft.rslora"] else "lora (r=8, q,v)"
  return {"compose": "mam (prefix + parallel adapter)", "head": "head-only", "layers": "layers (top 2)"}.get(m, m)


def seed0_ms(row: dict) -> float:
  """Seed 0's ms / step where the row records its runs, else the row's mean. Every seed-0 run ran with nothing
  else running; the other seeds ran partly beside other work or on another machine, so a mean over seeds would
  mix those."""
  return next((x["ms_per_step"] for x in row.get("per_run", []) if x["seed"] == 0), row["ms_per_step"])


def table(summary: dict) -> str:
  """Every method of `summary`, most accurate first; mean ± std over seeds where a row has several."""
  rows = sorted(summary["rows"], key=lambda r: -r["test/accuracy_mean"])
  lines = ["| method | trainable params | seeds | test accuracy | test macro F1 | validation accuracy (256) | "
           "ms / step (seed 0) |",
           "|---|---:|---:|---:|---:|---:|---:|"]
  for r in rows:
    lines.append(f"| {label(r)} | {r['trainable_params']:,} | {r['n_seeds']} | "
                 f"{mean_std(r['test/accuracy_mean'], r['test/accuracy_std'])} | "
                 f"{mean_std(r['test/macro_f1_mean'], r['test/macro_f1_std'])} | {r['eval/accuracy_mean']:.4f} | "
                 f"{seed0_ms(r):.0f} |")
  return "\n".join(lines)


# Test accuracy of the PyTorch reference (transformers + peft) on the same work: all-MiniLM-L6-v2, Rotten
# Tomatoes, batch 32, max length 64, 600 steps; its head-only row trains BERT's pooler + classifier.
REFERENCE = {"lora (r=8, q,v)": 0.808, "full": 0.845, "head-only": 0.724}


def reference_table(summary: dict) -> str:
  """Ours at 600 steps (results/cpu_600/summary.json) beside the PyTorch reference, in REFERENCE's order."""
  lines = ["| method | trainable params | seeds | test accuracy (ours) | PyTorch reference | ours - reference "
           "| validation accuracy (256) | ms / step (seed 0) |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
  for name, ref in REFERENCE.items():  # the method at the table's rate, then at any rate validation chose
    rows = sorted((r for r in summary["rows"] if label({**r, "optimizer.lr": 0.0}) == name), key=label)
    if not rows:
      lines.append(f"| {name} | | | (not run) | {ref:.3f} | | | |")
    for r in rows:
      acc = r["test/accuracy_mean"]
      lines.append(f"| {label(r)} | {r['trainable_params']:,} | {r['n_seeds']} | "
                   f"{mean_std(acc, r['test/accuracy_std'])} | {ref:.3f} | {acc - ref:+.4f} | "
                   f"{r['eval/accuracy_mean']:.4f} | {seed0_ms(r):.0f} |")
  return "\n".join(lines)


def lr_key(row: dict) -> str:
  """The method a learning-rate check's row belongs to: its table label without the rate."""
  return label({**row, "optimizer.lr": 0.0})


def lr_marker(name: str) -> str:
  """The README markers of a method's learning-rate table: "lora (r=8, q,v)" -> "lora_lr"."""
  return f"{name.split()[0]}_lr"


def lr_methods(tune: dict) -> list[str]:
  """The methods (table labels) of a learning-rate check, in the order of its rows."""
  return list(dict.fromkeys(map(lr_key, tune["rows"])))


def method_rows(tune: dict, name: str = "") -> list[dict]:
  """The rows of a learning-rate check (results/cpu_600_*lr/summary.json); with `name` (a table label), only its
  rows."""
  return [r for r in tune["rows"] if not name or lr_key(r) == name]


def chosen(tune: dict, name: str = "") -> dict:
  """The row with the highest validation accuracy (of `name`'s rows, where given): the rate validation chose."""
  rows = method_rows(tune, name)
  if not rows:
    raise SystemExit(f"no rows of {name!r} in this learning-rate check; it has {lr_methods(tune)}")
  return best_row({**tune, "rows": rows}, "eval/accuracy")


def lr_table(tune: dict, validation: str = "validation accuracy (256)", name: str = "") -> str:
  """A method's learning rates at 600 steps, seed 0, on validation (results/cpu_600_*lr/summary.json; with `name`,
  a table label, only its rows), the chosen one marked."""
  rows, best = method_rows(tune, name), chosen(tune, name)
  lines = [f"| learning rate | {validation} | validation macro F1 | validation loss | test split read |",
           "|---:|---:|---:|---:|---|"]
  for r in sorted(rows, key=lambda r: r["optimizer.lr"]):
    lr = f"**{r['optimizer.lr']:g}** (chosen)" if r is best else f"{r['optimizer.lr']:g}"
    read = "yes (the table's row)" if "test/accuracy_mean" in r else "no"
    lines.append(f"| {lr} | {r['eval/accuracy_mean']:.4f} | {r['eval/macro_f1_mean']:.4f} | "
                 f"{r['eval/loss_mean']:.4f} | {read} |")
  return "\n".join(lines)


def mean_std(mean: float, std: float | None) -> str:
  return f"{mean:.4f}" if std is None else f"{mean:.4f} ± {std:.4f}"


def torch_rows(folder: Path) -> dict[tuple[str, str], list[dict]]:
  """reference_torch.py's results, by (method, recipe)."""
  out: dict[tuple[str, str], list[dict]] = {}
  for path in sorted(folder.glob("*.json")):
    r = json.loads(path.read_text())
    out.setdefault((r["method"], r["recipe"]), []).append(r)
  return out


def recipe_table(ours: dict, ours_hf: dict | None, torch: dict, name: str = "full", method: str = "full") -> str:
  """`name` (a row label; `method` on the PyTorch side) at 600 steps: both sides, both recipes where they ran (the
  quickstart's settings and the transformers Trainer's defaults), seed by seed where both sides ran it (the same
  batches), then ours over all its seeds, beside the reference's."""
  row = lambda summary: next(r for r in summary["rows"] if label(r) == name)
  lines = ["| side | recipe | seed | test accuracy | validation accuracy (first 256) | ms / step |",
           "|---|---|---|---:|---:|---:|"]
  for recipe, title, summary in (("ours", "quickstart settings", ours), ("hf", "Trainer defaults", ours_hf)):
    runs = torch.get((method, recipe), [])
    for seed in sorted({r["seed"] for r in runs}):
      for x in (row(summary)["per_run"] if summary else []):
        if x["seed"] == seed:
          lines.append(f"| lightft_jax | {title} | {seed} | {x['test/accuracy']:.4f} | {x['eval/accuracy']:.4f} | "
                       f"{x['ms_per_step']:.0f} |")
      for r in runs:
        if r["seed"] == seed:
          lines.append(f"| transformers, same batches | {title} | {seed} | {r['test']['accuracy']:.4f} | "
                       f"{r['validation']['accuracy_first_256']:.4f} | {r['ms_per_step']:.0f} |")
  r = row(ours)
  seeds = ", ".join(str(x["seed"]) for x in sorted(r["per_run"], key=lambda x: x["seed"]))
  lines.append(f"| lightft_jax | quickstart settings | {seeds} (mean ± std) | "
               f"{mean_std(r['test/accuracy_mean'], r['test/accuracy_std'])} | {r['eval/accuracy_mean']:.4f} | "
               f"{r['ms_per_step']:.0f} |")
  lines.append(f"| PyTorch reference (the issue's) | not recorded | | {REFERENCE[name]:.3f} | | |")
  return "\n".join(lines)


def plot(summary: dict, path: Path, title: str) -> None:
  """Test accuracy (mean ± std over seeds) against trainable parameters (log x), one labelled point per method."""
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  fig, ax = plt.subplots(figsize=(8, 5))
  for r in summary["rows"]:
    ax.errorbar(r["trainable_params"], r["test/accuracy_mean"], yerr=r["test/accuracy_std"] or 0.0, fmt="o",
                capsize=3, color="tab:red" if r["peft.method"] == "full" else "tab:blue")
  ax.set_xscale("log")
  ax.set_xlabel("trainable parameters")
  ax.set_ylabel("test accuracy")
  ax.set_title(title)
  ax.grid(alpha=0.3)
  fig.tight_layout()
  place_labels(ax, [(label(r), r["trainable_params"], r["test/accuracy_mean"]) for r in summary["rows"]])
  fig.savefig(path, dpi=120)
  plt.close(fig)


def main() -> None:
  load = lambda name: json.loads((HERE / "results" / name / "summary.json").read_text())
  summary, ref = load("cpu"), load("cpu_600")
  text, text_600, ref_text = table(summary), table(ref), reference_table(ref)
  hf_path = HERE / "results" / "cpu_600_hf" / "summary.json"
  reparam_prefix_lr_text = lr_table(load("cpu_600_prefix_lr"))
  torch = torch_rows(HERE / "results" / "torch")
  recipe_text = recipe_table(ref, load("cpu_600_hf") if hf_path.exists() else None, torch)
  lora_recipe_text = recipe_table(ref, None, torch, "lora (r=8, q,v)", "lora")
  tune = load("cpu_600_lr")
  lr_texts = {lr_marker(m): lr_table(tune, "validation accuracy (all 1,407)", m) for m in lr_methods(tune)}
  if "--write" in sys.argv:
    title = "all-MiniLM-L6-v2, Rotten Tomatoes, batch 32, {}"
    plot(summary, HERE / "results" / "cpu" / "accuracy_vs_params.png", title.format("100 steps"))
    plot(ref, HERE / "results" / "cpu_600" / "accuracy_vs_params.png", title.format("600 steps"))
    for name, body in (("table", text), ("table_600", text_600), ("reparam_prefix_lr", reparam_prefix_lr_text),
                       ("reference", ref_text), ("recipe", recipe_text), ("lora_recipe", lora_recipe_text),
                       *lr_texts.items()):
      marked.write(HERE / "README.md", body, name)
    for name, body in (("table_600", text_600), ("reference", ref_text)):
      marked.write(HERE.parents[1] / "README.md", body, name)
  for body in (text, text_600, reparam_prefix_lr_text, ref_text, recipe_text, lora_recipe_text, *lr_texts.values()):
    print(f"{body}\n")


if __name__ == "__main__":
  main()
