"""SmolLM2-135M-Instruct few-shot on Rotten Tomatoes: k in {0,1,2,4,8}, gold vs random demonstration labels,
with and without contextual calibration. Writes one run directory per label mode under --out, plus a
combined plot (accuracy_vs_k.png) and a table (results.md).

  python -m experiments.icl_rotten_tomatoes.run --out=experiments/icl_rotten_tomatoes/results --limit=300
--data=DIR reads DIR/train.jsonl and DIR/test.jsonl ({"text", "label"} rows, exported by --export=DIR)
instead of the prepared TFDS dataset (for machines without TensorFlow).
"""

from __future__ import annotations

import json
from pathlib import Path

from absl import app, flags

from lightft_jax.plots import plot_curves

_OUT = flags.DEFINE_string("out", "experiments/icl_rotten_tomatoes/results", "output folder")
_LIMIT = flags.DEFINE_integer("limit", 300, "test examples (the first N of the test split)")
_SEEDS = flags.DEFINE_integer("seeds", 3, "demonstration sets (seeds) per k")
_KS = flags.DEFINE_string("k", "0+1+2+4+8", "numbers of demonstrations")
_BATCH = flags.DEFINE_integer("batch_size", 8, "examples per scoring call")
_DATA = flags.DEFINE_string("data", "", "folder with train.jsonl / test.jsonl instead of TFDS")
_EXPORT = flags.DEFINE_string("export", "", "write train.jsonl / test.jsonl of the TFDS dataset here and exit")
_SCAN = flags.DEFINE_bool("scan_layers", True, "scan over layers (faster compiles)")
_MODES = flags.DEFINE_list("labels", ["gold", "random"], "demonstration label modes to run")
_SELECTION = flags.DEFINE_string("selection", "random", "demonstration selection: random | balanced | knn")
_BOS = flags.DEFINE_enum("add_bos", "auto", ["auto", "true", "false"],
                         "auto: encode prompts as the tokenizer does (no BOS for SmolLM2); true: start every "
                         "prompt with the tokenizer's BOS token; false: never")
_INSTRUCTION = flags.DEFINE_string("instruction", "", "text before the demonstrations")


def export(folder: Path, limit: int):
  from lightft_jax import data
  task = data.get_task("rotten_tomatoes")
  folder.mkdir(parents=True, exist_ok=True)
  for split, n in (("train", None), ("test", limit)):
    rows = [{"text": e["text"], "label": int(e["label"])} for e in task.examples(split, limit=n)]
    (folder / f"{split}.jsonl").write_text("".join(json.dumps(r, allow_nan=False) + "\n" for r in rows))


def main(_):
  import sys
  sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "configs"))
  import icl_eval
  from lightft_jax.icl import run_icl_eval
  if _EXPORT.value:
    return export(Path(_EXPORT.value), _LIMIT.value)
  out = Path(_OUT.value)
  results = {}
  for mode in _MODES.value:
    c = icl_eval.get_config(f"k={_KS.value},limit={_LIMIT.value},seeds={_SEEDS.value},labels={mode},"
                            f"selection={_SELECTION.value}")
    c.icl.batch_size, c.icl.add_bos, c.prompt.instruction = _BATCH.value, _BOS.value, _INSTRUCTION.value
    c.model.overrides.scan_layers = _SCAN.value
    if _DATA.value:
      c.task.name = "jsonl"
      c.task.options = {"path": {s: str(Path(_DATA.value) / f"{s}.jsonl") for s in ("train", "test")},
                        "label_names": ["rotten", "fresh"]}
    results[mode] = run_icl_eval(c, out / f"labels_{mode}")
  ks = sorted(int(k) for k in results[_MODES.value[0]]["per_k"])
  get = lambda mode, metric: [results[mode]["per_k"][str(k)][metric] for k in ks]
  curves = {}
  for mode in _MODES.value:
    curves[f"{mode} labels"] = get(mode, "acc")
    curves[f"{mode} labels, calibrated"] = get(mode, "acc_calibrated")
  plot_curves(out / "accuracy_vs_k.png", ks, curves, xlabel="k (demonstrations)", ylabel="accuracy",
              title=f"SmolLM2-135M-Instruct, Rotten Tomatoes test (first {_LIMIT.value}), "
                    f"mean of {_SEEDS.value} seeds", chance=0.5)
  metrics = ("acc", "acc_calibrated", "acc_norm", "acc_mi", "pred_frac_1")
  lines = ["| labels | k | " + " | ".join(metrics) + " |", "|---|---|" + "---|" * len(metrics)]
  for mode in _MODES.value:
    for k in ks:
      row = results[mode]["per_k"][str(k)]
      lines.append(f"| {mode} | {k} | " + " | ".join(f"{row[m]:.3f} ± {row[m + '_std']:.3f}" for m in metrics) + " |")
  (out / "results.md").write_text("\n".join(lines) + "\n")
  print("\n".join(lines))


if __name__ == "__main__":
  app.run(main)
