"""icl_vs_peft: the combined table (ICL per k, calibrated and not, against LoRA / IA3 fine-tuned on the same k
examples), inference FLOPs per example, and the plot, from committed JSON. The ICL rows are RESULTS/icl/ (the prompt
validation chose) and, below, RESULTS/icl_prompt_fixed/ when present (the prompt fixed before that check). The
fine-tuned rows are those of RESULTS/peft/summary.json (the learning rate validation chose; each row's answer cue
is its `task.answer_prefix`, "\nAnswer:" for runs from before that key), marked where the cue is not the one
RESULTS/prompt_tune/summary.json chose, and, below them, RESULTS/peft_fixed_lr/summary.json when present (the rate
fixed before the validation check); the plot shows the rows whose settings validation chose.

  python -m experiments.icl_vs_peft.table --icl='runs/icl_vs_peft_cpu_icl/method=icl_ks=0+4+16+32_seeds=5_limit=200_cue=Sentiment' \
      --icl_prompt_fixed='runs/icl_vs_peft_cpu_icl/method=icl_ks=0+4+16+32_seeds=5_limit=200' --write

--icl copies that ICL run's results.json / config.json into RESULTS/icl/, --icl_prompt_fixed into
RESULTS/icl_prompt_fixed/ (records of the runs, committed; the fine-tuning runs' records are copied beside their
summaries by `launch.aggregate --copy-runs`); the table is always read from those records and RESULTS/peft/summary.json
(written by `python -m launch.aggregate`).
--write writes RESULTS/summary.json, summary.md and accuracy_vs_flops.png and the table between the markers of
this folder's README.md.

FLOPs per example (matmuls of the non-embedding parameters only, Kaplan et al.'s 2N per token; attention scores
and the LM head left out): 2 * N * tokens, N = SmolLM2-135M's non-embedding parameters (read from the GGUF),
tokens = the prompt's tokens (the answers are one token each, read from the prompt's last position, so no answer
token is processed). `flops_per_example`: every example's whole prompt, demonstrations included (T-Few's
convention: nothing is reused between test examples). `flops_per_example_amortised`: the demonstrations (the
prefix every query shares, which the scorer runs once into a KV cache) counted once per demonstration set and
divided over the test examples, plus each query's own tokens; calibrated rows add the content-free prompts
(once per set, divided over the test examples) in both. Fine-tuned models read the k=0 prompt (LoRA merged and
IA3's scaling add no matmul).
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import shlex
import shutil
import sys
from pathlib import Path

from experiments import marked
from lightft_jax.kinds import ANSWER_PREFIX

HERE = Path(__file__).parent
LABEL = {"icl": "ICL", "icl_calibrated": "ICL, calibrated", "lora": "LoRA (r=8, q,v)", "ia3": "IA3"}


def _mean_std(xs: list[float]) -> tuple[float, float | None]:
  m = sum(xs) / len(xs)
  return m, (math.sqrt(sum((x - m) ** 2 for x in xs) / (len(xs) - 1)) if len(xs) > 1 else None)


def non_embedding_params(model_path: str) -> int:
  """Elements of every GGUF tensor but the token embedding (and an untied output matrix)."""
  from lightft_jax.models import gguf
  reader = gguf._reader(Path(model_path))
  return int(sum(int(t.n_elements) for t in reader.tensors if t.name not in ("token_embd.weight", "output.weight")))


def prompt_tokens(icl_config: dict, ks: list[int], seeds: list[int]) -> dict:
  """{k: {seed: {"prompt": mean tokens per query, "prefix": shared prefix, "suffix": mean per-query tokens,
  "content_free": tokens of the content-free prompts of the set}}}, rebuilt with the harness's own pieces."""
  import ml_collections
  from lightft_jax import data
  from lightft_jax.icl.fewshot import PromptEncoder, _content_free_query, _demo_sets
  from lightft_jax.icl.run_eval import fewshot_options, make_template
  from lightft_jax.icl.scoring import common_prefix_length
  from lightft_jax.train.build import build_tokenizer
  cfg = ml_collections.ConfigDict(icl_config)
  task = data.get_task(cfg.task.name, **dict(cfg.task.options))
  template = make_template(cfg.prompt, task)
  pool = task.examples(cfg.task.train_split, cfg.task.data_dir or None, limit=cfg.icl.pool_limit or None)
  queries = task.examples(cfg.task.test_split, cfg.task.data_dir or None, limit=cfg.icl.query_limit or None)
  options = fewshot_options(cfg.icl)
  enc = PromptEncoder(build_tokenizer(cfg.model), options.add_bos)
  labels = [int(p["label"]) for p in pool]
  out: dict = {}
  for k in ks:
    for seed in seeds:
      idx, shown = _demo_sets(options, k, seed, pool, 1, labels, 2, None, "label")[0]
      demos = [pool[i] for i in idx]
      ids = [enc.context(template.build(demos, q, shown)) for q in queries]
      prefix = common_prefix_length(ids)
      cf = [enc.context(template.build(demos, _content_free_query(template, t), shown))
            for t in options.content_free_inputs]
      out.setdefault(k, {})[seed] = {"prompt": sum(map(len, ids)) / len(ids), "prefix": prefix,
                                     "suffix": sum(len(i) - prefix for i in ids) / len(ids),
                                     "content_free": sum(map(len, cf)), "queries": len(ids)}
  return out


def cue(prefix: str) -> str:
  """"\nAnswer:" -> "Answer:" (the prompt's last line, which the answer follows)."""
  return prefix.rsplit("\n", 1)[-1]


def with_prefix(icl_config: dict, prefix: str) -> dict:
  """The ICL config with its template's last line (the cue) replaced by `prefix`."""
  c = copy.deepcopy(icl_config)
  c["prompt"]["input_template"] = c["prompt"]["input_template"].rsplit("\n", 1)[0] + prefix
  return c


def chosen_prefixes(results_dir: Path) -> dict[str, str]:
  """{method: the answer prefix validation chose} from RESULTS/prompt_tune/summary.json ({} without one)."""
  from launch.aggregate import best_row
  path = results_dir / "prompt_tune" / "summary.json"
  if not path.exists():
    return {}
  tune = json.loads(path.read_text())
  return {m: best_row(tune, "eval/accuracy", {"peft.method": m})["task.answer_prefix"]
          for m in dict.fromkeys(r["peft.method"] for r in tune["rows"])}


def icl_rows(icl: dict, icl_config: dict, n: int, prompt_chosen: str) -> list[dict]:
  ks = sorted(int(k) for k in icl["per_k"])
  tokens = prompt_tokens(icl_config, ks, list(icl["seeds"]))
  rows = []
  for k in ks:
    per_seed = icl["per_seed"][str(k)]
    draws = per_seed[:1] if k == 0 else per_seed  # k=0: no demonstrations, every seed scores the same prompts
    tk = [tokens[k][r["seed"]] for r in draws]
    q = tk[0]["queries"]
    for name, metric in (("icl", "acc"), ("icl_calibrated", "acc_calibrated")):
      mean, std = _mean_std([r[metric] for r in draws])
      extra = [t["content_free"] / q if name == "icl_calibrated" else 0.0 for t in tk]
      full = [t["prompt"] + e for t, e in zip(tk, extra)]
      amortised = [t["prefix"] / q + t["suffix"] + e for t, e in zip(tk, extra)]
      rows.append({"method": name, "k": k, "n_seeds": len(draws), "test_accuracy_mean": mean,
                   "test_accuracy_std": std, "trainable_params": 0,
                   "cue": cue(icl_config["prompt"]["input_template"]), "prompt_chosen": prompt_chosen,
                   "tokens_per_example": _mean_std(full)[0], "flops_per_example": 2 * n * _mean_std(full)[0],
                   "flops_per_example_amortised": 2 * n * _mean_std(amortised)[0]})
  return rows


def build(results_dir: Path) -> dict:
  icl = json.loads((results_dir / "icl" / "results.json").read_text())
  icl_config = json.loads((results_dir / "icl" / "config.json").read_text())
  peft = json.loads((results_dir / "peft" / "summary.json").read_text())
  fixed = results_dir / "peft_fixed_lr" / "summary.json"
  fixed_rows = json.loads(fixed.read_text())["rows"] if fixed.exists() else []
  from lightft_jax.train.build import ALIASES  # noqa: F401  (model= alias -> the bundled GGUF)
  from lightft_jax.models import assets
  model = icl_config["model"]["name"]
  path = str(getattr(assets, ALIASES[model])()) if model in ALIASES else model
  n = non_embedding_params(path)
  seeds = list(icl["seeds"])
  rows = icl_rows(icl, icl_config, n, "validation")
  fixed_icl = results_dir / "icl_prompt_fixed"
  if fixed_icl.exists():
    rows += icl_rows(json.loads((fixed_icl / "results.json").read_text()),
                     json.loads((fixed_icl / "config.json").read_text()), n, "fixed")
  zero: dict[str, float] = {}  # answer prefix -> tokens of the zero-shot prompt a fine-tuned model reads
  chosen = chosen_prefixes(results_dir)
  for lr_chosen, peft_rows in (("validation", peft["rows"]), ("fixed", fixed_rows)):
    for r in peft_rows:
      prefix = r.get("task.answer_prefix") or ANSWER_PREFIX  # runs from before the key read the default
      if prefix not in zero:
        zero[prefix] = prompt_tokens(with_prefix(icl_config, prefix), [0], seeds[:1])[0][seeds[0]]["prompt"]
      z = zero[prefix]
      rows.append({"method": r["peft.method"], "k": r["task.options.train_k"], "n_seeds": r["n_seeds"],
                   "lr": r["optimizer.lr"], "lr_chosen": lr_chosen, "cue": cue(prefix),
                   "prompt_chosen": "validation" if chosen.get(r["peft.method"], prefix) == prefix else "fixed",
                   "test_accuracy_mean": r["test/accuracy_mean"], "test_accuracy_std": r["test/accuracy_std"],
                   "eval_accuracy_mean": r.get("eval/accuracy_mean"), "trainable_params": r["trainable_params"],
                   "tokens_per_example": z, "flops_per_example": 2 * n * z,
                   "flops_per_example_amortised": 2 * n * z, "ms_per_step": r["ms_per_step"]})
  order = {"icl": 0, "icl_calibrated": 1, "lora": 2, "ia3": 3}
  rows.sort(key=lambda r: (r.get("lr_chosen") == "fixed", r["prompt_chosen"] == "fixed", order.get(r["method"], 9),
                           r["k"]))
  return {"rows": rows, "non_embedding_params": n, "model": path, "test_examples": icl["num_queries"],
          "test_split": icl["split"], "pool_size": icl["pool_size"], "icl_seeds": seeds,
          "flops_convention": "2 * non-embedding params * prompt tokens per example (see table.py)",
          "peft_summary_command": peft["command"], "device": peft["device"], "versions": peft["versions"]}


def _fmt_acc(r: dict) -> str:
  s = f"{r['test_accuracy_mean']:.3f}"
  return s + (f" ± {r['test_accuracy_std']:.3f}" if r["test_accuracy_std"] is not None else "")


def label(r: dict) -> str:
  """The method's name; a fine-tuned row adds its learning rate; a setting fixed before its validation check rather
  than chosen by it (the learning rate, the prompt's answer cue) is named."""
  name = LABEL.get(r["method"], r["method"])
  if "lr" in r:
    name = f"{name}, lr {r['lr']:g}"
  fixed = [s for s, key in (("lr", "lr_chosen"), ("prompt", "prompt_chosen")) if r.get(key) == "fixed"]
  return name + (f" ({' and '.join(fixed)} fixed before validation)" if fixed else "")


def table(summary: dict) -> str:
  lines = ["| method | answer cue | k | draws | test accuracy | prompt tokens / example | inference FLOPs / example "
           "| amortised FLOPs / example | trainable params |", "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
  for r in summary["rows"]:
    lines.append(f"| {label(r)} | `{r['cue']}` | {r['k']} | {r['n_seeds']} | {_fmt_acc(r)} | "
                 f"{r['tokens_per_example']:.1f} | {r['flops_per_example']:.3g} | "
                 f"{r['flops_per_example_amortised']:.3g} | {r['trainable_params']:,} |")
  return "\n".join(lines)


def plot(summary: dict, path: Path) -> None:
  """Test accuracy against inference FLOPs per example (log x); fine-tuned points share the k=0 cost and are
  spread a little along x so they can be told apart."""
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  fig, ax = plt.subplots(figsize=(7.5, 4.8))
  styles = {"icl": ("tab:blue", "o", 1.0), "icl_calibrated": ("tab:cyan", "s", 1.0),
            "lora": ("tab:red", "^", 1.0), "ia3": ("tab:green", "v", 1.0)}
  for method, (color, marker, _) in styles.items():
    rs = [r for r in summary["rows"]
          if r["method"] == method and "fixed" not in (r.get("lr_chosen"), r["prompt_chosen"])]
    if not rs:
      continue
    ft = method in ("lora", "ia3")
    xs = [r["flops_per_example"] * ((1.06 + 0.06 * i + (0.25 if method == "ia3" else 0.0)) if ft else 1.0)
          for i, r in enumerate(rs)]
    ys = [r["test_accuracy_mean"] for r in rs]
    ax.errorbar(xs, ys, yerr=[r["test_accuracy_std"] or 0.0 for r in rs], color=color, marker=marker,
                linestyle="none" if ft else "-", capsize=3, label=LABEL[method] + (" (fine-tuned on k)" if ft else ""))
    for x, y, r in zip(xs, ys, rs):
      ax.annotate(f"k={r['k']}", (x, y), textcoords="offset points", xytext=(4, 3), fontsize=7, color=color)
  ax.set_xscale("log")
  ax.set_xlabel("inference FLOPs per test example (2 x non-embedding params x prompt tokens)")
  ax.set_ylabel(f"test accuracy ({summary['test_examples']} examples)")
  ax.set_title("SmolLM2-135M, Rotten Tomatoes: k-shot ICL vs PEFT on the same k examples", fontsize=10)
  ax.grid(alpha=0.3)
  ax.legend(fontsize=8)
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)


def copy_icl_run(icl_dir: str, results_dir: Path, name: str = "icl") -> None:
  (results_dir / name).mkdir(parents=True, exist_ok=True)
  for f in ("results.json", "config.json", "accuracy_vs_k.png"):
    if (Path(icl_dir) / f).exists():
      shutil.copy(Path(icl_dir) / f, results_dir / name / f)


def main(argv=None) -> None:
  argv = sys.argv[1:] if argv is None else argv
  ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  ap.add_argument("--results", default=str(HERE / "results" / "cpu"))
  ap.add_argument("--icl", default=None, help="the ICL run directory to copy into RESULTS/icl/")
  ap.add_argument("--icl_prompt_fixed", default=None,
                  help="the ICL run at the prompt fixed before validation, copied into RESULTS/icl_prompt_fixed/")
  ap.add_argument("--write", action="store_true")
  args = ap.parse_args(argv)
  results = Path(args.results)
  if args.icl:
    copy_icl_run(args.icl, results)
  if args.icl_prompt_fixed:
    copy_icl_run(args.icl_prompt_fixed, results, "icl_prompt_fixed")
  summary = build(results)
  summary["command"] = shlex.join(["python", "-m", "experiments.icl_vs_peft.table", *argv])
  text = table(summary)
  if args.write:
    (results / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    (results / "summary.md").write_text(text + f"\n\nCommand: `{summary['command']}`\n\nDevice: {summary['device']}\n")
    plot(summary, results / "accuracy_vs_flops.png")
    readme = HERE / "README.md"
    if readme.exists() and marked.markers()[0] in readme.read_text():
      marked.write(readme, text)
  print(text)


if __name__ == "__main__":
  main()
