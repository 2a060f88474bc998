"""A run plus its baselines (same command, a few config changes each) and their comparison table."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import ml_collections

from lightft_jax.train import config_lib, distributed


def baseline_config(config: ml_collections.ConfigDict, overrides: dict[str, Any]) -> ml_collections.ConfigDict:
  """A copy of `config` with dotted-key `overrides`; a dict value replaces a whole section (e.g. peft)."""
  cfg = ml_collections.ConfigDict(config.to_dict())
  for key, value in overrides.items():
    config_lib.set_key(cfg, key, ml_collections.ConfigDict(value) if isinstance(value, dict) else value)
  cfg.baselines = ()
  return config_lib.finalize(cfg)


def comparison_table(rows: list[dict[str, Any]], metric: str) -> str:
  """Markdown table: method, trainable params (% of model), test metric, wall time."""
  lines = [f"| method | trainable params | test {metric} | wall time (s) |", "|---|---:|---:|---:|"]
  for r in rows:
    value = "n/a" if r["test_metric"] is None else f"{r['test_metric']:.4f}"
    lines.append(f"| {r['method']} | {r['trainable_params']:,} ({r['trainable_percent']:.2f}%) | "
                 f"{value} | {r['wall_time_s']:.0f} |")
  return "\n".join(lines)


def run_with_baselines(config: ml_collections.ConfigDict, workdir: str | Path) -> list[dict[str, Any]]:
  """train(config) in `workdir` and each `config.baselines` entry in workdir/baselines/NAME; the table."""
  from lightft_jax.train.loop import primary_metric, train
  workdir = Path(workdir)
  runs = [(config.peft.get("method", "full"), config, workdir)]
  for name, overrides in config.get("baselines", ()):
    runs.append((name, baseline_config(config, dict(overrides)), workdir / "baselines" / name))
  rows = []
  for name, cfg, wd in runs:
    res = train(cfg, wd)
    test = res.get("test") or res.get("eval") or {}
    metric = primary_metric(cfg, test)
    rows.append({"method": name, "trainable_params": res["trainable_params"],
                 "trainable_percent": res["trainable_percent"], "test_metric": test.get(metric),
                 "metric": metric, "wall_time_s": res["wall_time_s"], "workdir": str(wd)})
  if len(rows) > 1 and distributed.is_main():
    rows = rows[1:] + rows[:1]  # baselines first, the main method last
    table = comparison_table(rows, rows[-1]["metric"])
    (workdir / "comparison.md").write_text(table + "\n")
    (workdir / "comparison.json").write_text(json.dumps(rows, indent=2, allow_nan=False) + "\n")
    print("\n" + table, flush=True)
  return rows
