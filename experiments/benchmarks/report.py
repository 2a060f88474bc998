"""Markdown table and JSON of a suite's results."""

from __future__ import annotations

import importlib.metadata
import json
import os
import platform


def versions(*packages: str) -> dict[str, str]:
  """{"python": ..., package: version or "missing"} for a results file's record of what ran."""
  out = {"python": platform.python_version()}
  for p in packages:
    try:
      out[p] = importlib.metadata.version(p)
    except importlib.metadata.PackageNotFoundError:
      out[p] = "missing"
  return out


def _gib(b) -> str:
  return "-" if not b else f"{b / 2**30:.2f}"


def _rate(side: dict | None, key: str) -> str:
  if not side:
    return "-"
  value = f"{side[key]:,.0f}" if side[key] >= 100 else f"{side[key]:.3g}"
  return f"{value} (±{100 * side['iqr_rel'] / 2:.0f}%)"


def _losses(r: dict) -> str:
  if "ours_first_loss" not in r:
    return "-"
  theirs = r.get("theirs_first_loss")
  return f"{r['ours_first_loss']:.4f} / " + ("-" if theirs is None else f"{theirs:.4f}")


def table(results: list[dict]) -> str:
  """One row per case: throughput of both sides, ratio, compile time, memory, floor and MFU."""
  head = ("| case | unit | ours | transformers+peft | ours/theirs | ours first step s | ours peak GiB | "
          "theirs peak GiB | floor GiB | ours/floor | ours MFU | theirs MFU | first loss ours / theirs |")
  rows = [head, "|" + "---|" * (head.count("|") - 1)]
  for r in results:
    if "error" in r:
      rows.append(f"| {r['title']} | failed: {r['error'][:120]} |" + " |" * 11)
      continue
    unit = {"train": "tokens/s", "generate": "new tokens/s", "score": "items/s"}[r["kind"]]
    key = "examples_per_s" if r["kind"] == "score" else "tokens_per_s"
    ours, theirs = r.get("ours"), r.get("theirs")
    floor = r.get("memory_floor", {}).get("total")
    mfu = lambda s: f"{100 * s['mfu']:.1f}%" if s and "mfu" in s else "-"
    rows.append(" | ".join([
        f"| {r['title']} ({r['batch']}x{r['seq']})", unit, _rate(ours, key), _rate(theirs, key),
        f"{r['speedup']:.2f}" if "speedup" in r else "-", f"{r.get('ours_first_step_s', 0):.1f}",
        _gib(r.get("ours_peak_bytes")), _gib(r.get("theirs_peak_bytes")), _gib(floor),
        f"{r['ours_over_floor']:.2f}" if "ours_over_floor" in r else "-", mfu(ours), mfu(theirs), _losses(r)]) + " |")
  return "\n".join(rows)


def write(out_dir: str, meta: dict, results: list[dict]) -> str:
  os.makedirs(out_dir, exist_ok=True)
  with open(os.path.join(out_dir, "results.json"), "w") as f:
    json.dump({"meta": meta, "cases": results}, f, indent=1, default=str, allow_nan=False)
  md = [f"# Benchmarks: suite `{meta['suite']}`", "",
        f"- command: `{meta['command']}`", f"- date: {meta['date']}", f"- device: {meta['device']}",
        f"- versions: {', '.join(f'{k} {v}' for k, v in meta['versions'].items())}",
        f"- repeats {meta['repeats']} x {meta['inner']} calls, warm-up {meta['warmup']}; "
        f"load average at start {meta['loadavg']}; our train step: {meta['train_step']}; "
        f"CPU threads per side: {meta['cpu_threads'] if meta['suite'] != 'gpu' else 'n/a'}", "", table(results), ""]
  text = "\n".join(md)
  with open(os.path.join(out_dir, "results.md"), "w") as f:
    f.write(text)
  return text
