"""Trainable parameters of every quickstart method on the real all-MiniLM-L6-v2 (2-label mean-pooling head).

  python -m experiments.quickstart.method_params   # writes experiments/quickstart/results/method_params.json

For each `configs/quickstart.py:method=NAME` (every registered PEFT method, plus the `mam` compose section), builds
the model the quickstart trains (`models.from_pretrained(minilm_dir(), task="classification", num_labels=2,
head_style="mean")`), attaches the config's peft section with `peft.apply` and records `peft.param_counts`
(trainable, total). Nothing is trained; no data is read.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

os.environ.setdefault("JAX_PLATFORMS", "cpu")

ROOT = Path(__file__).resolve().parents[2]
OUT = Path(__file__).resolve().parent / "results" / "method_params.json"


def quickstart(arg: str):
  from lightft_jax.train import config_lib
  return config_lib.config_module(ROOT / "configs" / "quickstart.py").get_config(arg)


def main() -> None:
  from lightft_jax import peft
  from lightft_jax.models import from_pretrained
  from lightft_jax.models.assets import minilm_dir

  rows = []
  for method in peft.methods() + ["mam"]:
    cfg = quickstart(f"method={method}")
    model = from_pretrained(minilm_dir(), task="classification", num_labels=2, dtype=cfg.model.dtype,
                            head_style=cfg.model.head_style)
    peft.apply(model, cfg.peft)
    trainable, total = peft.param_counts(model)
    rows.append({"method": method, "command": f"python -m lightft_jax.main --config=configs/quickstart.py:"
                                              f"method={method} --workdir=runs/quickstart_{method}",
                 "trainable_params": int(trainable), "total_params": int(total),
                 "trainable_percent": round(100.0 * trainable / total, 4), "lr": cfg.optimizer.lr,
                 "peft": cfg.peft.to_dict()})
    print(f"{method:<20} {trainable:>12,} / {total:,} ({100.0 * trainable / total:.3f}%)", flush=True)
  OUT.parent.mkdir(parents=True, exist_ok=True)
  OUT.write_text(json.dumps({"model": "all-MiniLM-L6-v2 (models.assets.minilm_dir), classification, 2 labels, "
                                      "mean-pooling head", "methods": rows}, indent=2, default=str) + "\n")
  print(f"wrote {OUT.relative_to(ROOT)}", file=sys.stderr)


if __name__ == "__main__":
  main()
