"""Finished run directories -> one table: summary.json, summary.md and plots.

  python -m launch.aggregate 'runs/quickstart_sweep/*' --group-by=peft.method,peft.r --out=results/

Inputs are run directories, globs, or folders holding run directories (a sweep root). Every run must have
finished: a run without results.json, or whose status is not "completed" (or "early_stopped"), stops the
aggregation with a list of such runs. Runs are grouped by dotted config keys read from each run's config.json
(default: the keys whose values differ between the runs, except `seed`; a key only some runs have is null for the
others); one row per group:

  group keys..., n_seeds (runs in the group), <metric>_mean, <metric>_std (sample std, ddof=1; null for one
  run) for every number in results.json "test" and "eval" (test/accuracy, eval/loss, ...; not the example
  counts), trainable_params, ms_per_step (mean over the runs) and ms_per_step_from.

ms_per_step comes from the last train row of metrics.jsonl that has `examples_per_s` (the training logger's
throughput, measured after the first step, so compilation is excluded): 1000 * batch_size / examples_per_s;
ms_per_step_from says "examples_per_s". A run without such a row falls back to 1000 * wall_time_s / step from
results.json (this includes compilation and evaluation; ms_per_step_from says "wall_time").

An earlier aggregation's summary.json may stand among the inputs for runs whose directories are gone (a new
machine, a cleaned disk): its rows' per_run entries, which hold each run's metrics, step time, parameters,
device and train-loss curve, join as runs, grouped by that summary's own keys (so --group-by is required and
may name only those); a run whose directory is also among the inputs is read from the directory. A row written
before rows had per_run stands for its one run when it has one (its seed unknown; no curve); one of more runs is
refused.

--copy-runs copies each aggregated run directory's record (config.json, results.json, metrics.jsonl and, where
the run wrote them, samples.txt and classification_report.txt; no checkpoints) into OUT/runs/<name>/, so the
committed summary sits beside the runs it was made from. <name> is the run directory's name, or, where two runs
share a name, its path below the runs' common folder.

summary.json also holds `command` (this aggregation), `device` (from results.json "device" where runs record
it) and `versions` (packages of the environment running this). Plots: metric_vs_params.png (--metric
against trainable parameters, log x, one line per value of the first group key, points labelled by the other
keys) and learning_curves.png (train loss per run from metrics.jsonl, one colour per group); labels name only
the keys whose values differ.
"""

from __future__ import annotations

import argparse
import glob
import importlib.metadata
import json
import math
import os
import platform
import shlex
import shutil
import sys
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from launch.sweep import COMMAND_FILE, FINISHED  # noqa: E402

IGNORED_KEYS = ("seed", "wandb.", "distributed.", "logging.")
RUN_RECORD = (COMMAND_FILE, "config.json", "results.json", "metrics.jsonl", "samples.txt",
              "classification_report.txt")


def _is_run(d: Path) -> bool:
  return any((d / f).exists() for f in ("config.json", "results.json", "metrics.jsonl", "checkpoints"))


def find_runs(inputs: list[str]) -> tuple[list[Path], list[Path]]:
  """(run directories, summary.json files) named by `inputs` (directories, globs, folders of run directories,
  or an earlier aggregation's summary.json), sorted."""
  runs: set[Path] = set()
  summaries: list[Path] = []
  for spec in inputs:
    matches = [Path(m) for m in sorted(glob.glob(spec))] or [Path(spec)]
    for m in matches:
      if m.is_file() and m.name == "summary.json":
        summaries.append(m)
      elif m.is_dir():
        runs |= {m} if _is_run(m) else {c for c in m.iterdir() if c.is_dir() and _is_run(c)}
  if not runs and not summaries:
    raise SystemExit(f"no run directories found in {inputs}")
  return sorted(runs), summaries


def flatten(d: dict, prefix: str = "") -> dict[str, Any]:
  out = {}
  for k, v in d.items():
    if isinstance(v, dict) and v:
      out.update(flatten(v, f"{prefix}{k}."))
    else:
      out[f"{prefix}{k}"] = v
  return out


def load_run(d: Path) -> dict[str, Any]:
  results = json.loads((d / "results.json").read_text())
  config = flatten(json.loads((d / "config.json").read_text()))
  metrics = {f"{split}/{k}": float(v) for split in ("test", "eval") for k, v in (results.get(split) or {}).items()
             if k != "examples" and isinstance(v, (int, float)) and not isinstance(v, bool)}
  rows = [json.loads(l) for l in (d / "metrics.jsonl").read_text().splitlines() if l.strip()] \
      if (d / "metrics.jsonl").exists() else []
  train = [r for r in rows if r.get("split") == "train"]
  rate = next((r["examples_per_s"] for r in reversed(train) if r.get("examples_per_s")), None)
  if rate:
    ms, source = 1000.0 * config["batch_size"] / rate, "examples_per_s"
  else:
    ms, source = 1000.0 * results["wall_time_s"] / max(results["step"], 1), "wall_time"
  return {"dir": d, "config": config, "metrics": metrics, "trainable_params": results["trainable_params"],
          "ms_per_step": ms, "ms_per_step_from": source, "device": results.get("device"), "host": results.get("host"),
          "curve": [(r["step"], r["loss"]) for r in train if r.get("loss") is not None]}


ROW_FIELDS = ("n_seeds", "trainable_params", "ms_per_step", "ms_per_step_from", "runs", "per_run")


def load_records(path: Path, group_by: list[str]) -> list[dict[str, Any]]:
  """The runs an earlier aggregation recorded in `path` (its rows' per_run entries), in load_run's form, for
  runs whose directories are not here. Their config holds only that summary's group keys and the seed, so they
  can be grouped only by those keys; their learning curves are those the summary recorded (none before curves
  were recorded per run)."""
  summary = json.loads(path.read_text())
  out = []
  for row in summary["rows"]:
    keys = {k: v for k, v in row.items() if k not in ROW_FIELDS and not k.endswith(("_mean", "_std"))}
    missing = [k for k in group_by if k not in keys and k != "seed"]
    if missing:
      raise SystemExit(f"{path} is grouped by {sorted(keys)}: its runs cannot be grouped by {missing}")
    for rec in row.get("per_run") or _single_run(path, row):
      out.append({"dir": Path(rec["run"]), "config": {**keys, "seed": rec.get("seed")},
                  "metrics": {k: v for k, v in rec.items() if k.startswith(("test/", "eval/"))},
                  "trainable_params": rec.get("trainable_params", row["trainable_params"]),
                  "ms_per_step": rec["ms_per_step"], "ms_per_step_from": rec.get("ms_per_step_from",
                                                                                 row["ms_per_step_from"]),
                  "device": rec.get("device", summary.get("device")), "host": rec.get("host"),
                  "curve": [tuple(p) for p in rec.get("curve", [])]})
  return out


def _single_run(path: Path, row: dict) -> list[dict]:
  """A row written before rows recorded per_run: its means are its one run's numbers (seed unknown); a row of
  more runs cannot be split into them."""
  if row.get("n_seeds") != 1 or len(row.get("runs", [])) != 1:
    raise SystemExit(f"{path}: a row of {row.get('n_seeds')} runs without per_run cannot be split into its runs; "
                     "aggregate their directories instead")
  return [{"run": row["runs"][0], "seed": None, "ms_per_step": row["ms_per_step"],
           **{k[:-len("_mean")]: v for k, v in row.items() if k.endswith("_mean")}}]


def check_finished(runs: list[Path]) -> None:
  bad = []
  for d in runs:
    res = d / "results.json"
    status = json.loads(res.read_text()).get("status") if res.exists() else "no results.json"
    if status not in FINISHED:
      bad.append(f"  {d}: {status}")
    elif not (d / "config.json").exists():
      bad.append(f"  {d}: no config.json")
  if bad:
    raise SystemExit("these runs have not finished (status must be completed or early_stopped):\n" + "\n".join(bad))


def varying_keys(runs: list[dict]) -> list[str]:
  keys = sorted({k for r in runs for k in r["config"]})
  return [k for k in keys if not k.startswith(IGNORED_KEYS) and
          len({json.dumps(r["config"].get(k), sort_keys=True) for r in runs}) > 1]


def _mean_std(xs: list[float]) -> tuple[float, float | None]:
  m = sum(xs) / len(xs)
  return m, (math.sqrt(sum((x - m) ** 2 for x in xs) / (len(xs) - 1)) if len(xs) > 1 else None)


def summarize(runs: list[dict], group_by: list[str]) -> list[dict[str, Any]]:
  nowhere = [k for k in group_by if not any(k in r["config"] for r in runs)]
  if nowhere:
    raise SystemExit(f"no run's config.json has the key(s) {nowhere}")
  groups: dict[tuple, list[dict]] = {}
  for r in runs:  # a key only some runs have (peft.r for LoRA runs beside IA3 ones) is null for the others
    groups.setdefault(tuple(json.dumps(r["config"].get(k)) for k in group_by), []).append(r)
  rows = []
  for key, members in groups.items():
    row: dict[str, Any] = {k: json.loads(v) for k, v in zip(group_by, key)}
    row["n_seeds"] = len(members)
    names = [m for m in members[0]["metrics"] if all(m in x["metrics"] for x in members)]
    for m in names:
      row[f"{m}_mean"], row[f"{m}_std"] = _mean_std([x["metrics"][m] for x in members])
    row["trainable_params"] = round(sum(x["trainable_params"] for x in members) / len(members))
    row["ms_per_step"] = _mean_std([x["ms_per_step"] for x in members])[0]
    row["ms_per_step_from"] = "/".join(sorted({x["ms_per_step_from"] for x in members}))
    row["runs"] = [str(x["dir"]) for x in members]
    row["per_run"] = [{"run": str(x["dir"]), "seed": x["config"].get("seed"), "ms_per_step": x["ms_per_step"],
                       "ms_per_step_from": x["ms_per_step_from"], "trainable_params": x["trainable_params"],
                       "device": x["device"], **({"host": x["host"]} if x.get("host") else {}),
                       **{m: x["metrics"][m] for m in names}, "curve": x["curve"]}
                      for x in members]  # each run's own numbers, enough to aggregate it again without its directory
    rows.append(row)
  return sorted(rows, key=lambda r: [_order(r[k]) for k in group_by])


def _order(v: Any) -> tuple:
  """Numbers in numeric order (2 before 16), before everything else in the order of its JSON text."""
  number = isinstance(v, (int, float)) and not isinstance(v, bool)
  return (0, v, "") if number else (1, 0, json.dumps(v))


def versions() -> dict[str, str]:
  out = {"python": platform.python_version()}
  for pkg in ("jax", "jaxlib", "flax", "optax"):
    try:
      out[pkg] = importlib.metadata.version(pkg)
    except importlib.metadata.PackageNotFoundError:
      pass
  return out


def _fmt(v: Any) -> str:
  """A markdown table cell: floats to 4 significant digits; newlines and pipes in strings escaped (one line)."""
  if v is None:
    return "-"
  return f"{v:.4g}" if isinstance(v, float) else str(v).replace("\n", "\\n").replace("|", "\\|")


def write_markdown(path: Path, summary: dict, group_by: list[str], metrics: list[str]) -> None:
  head = group_by + ["n_seeds"] + metrics + ["trainable_params", "ms_per_step"]
  lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
  for r in summary["rows"]:
    cells = [_fmt(r[k]) for k in group_by + ["n_seeds"]]
    for m in metrics:
      mean, std = r.get(f"{m}_mean"), r.get(f"{m}_std")
      cells.append("" if mean is None else _fmt(mean) + ("" if std is None else f" ± {std:.2g}"))
    cells += [f"{r['trainable_params']:,}", f"{r['ms_per_step']:.1f} ({r['ms_per_step_from']})"]
    lines.append("| " + " | ".join(cells) + " |")
  vers = ", ".join(f"{k} {v}" for k, v in summary["versions"].items())
  path.write_text("\n".join(lines) + f"\n\nCommand: `{summary['command']}`\n\nDevice: {summary['device']}\n\n"
                  f"Versions: {vers}\n")


def short_labels(groups: list[dict], keys: list[str], width: int = 28) -> list[str]:
  """A legend / point label per group: only the keys whose values differ between the groups, by their last
  dotted part, values that are None left out and long values cut to `width` characters."""
  varying = [k for k in keys if len({repr(g.get(k)) for g in groups}) > 1]
  cut = lambda v: v if len(v) <= width else v[:width - 3] + "..."
  return [", ".join(f"{k.split('.')[-1]}={cut(str(g.get(k)))}" for k in varying if g.get(k) is not None) or "runs"
          for g in groups]


def place_labels(ax, points: list[tuple[str, float, float]]) -> None:
  """Annotate each (text, x, y), highest points first, at the offset whose text box overlaps the fewest labels
  placed before (the first such in order of distance; a thin line leads to a label moved off its point)."""
  from matplotlib.text import Text
  ax.figure.canvas.draw()  # settle the autoscaled limits, so that data -> pixel transforms are final
  renderer = ax.figure.canvas.get_renderer()
  offsets = [(4, 3)] + [(dx, dy) for k in range(1, 8) for dy in (10 * k + 3, -10 * k - 3) for dx in (4, 24)]
  boxes = []

  def box(offset, text, x, y):  # the text's own box, without its leader line
    ann = ax.annotate(text, (x, y), textcoords="offset points", xytext=offset, fontsize=7)
    ann.update_positions(renderer)
    b = Text.get_window_extent(ann, renderer).expanded(1.02, 1.1)
    ann.remove()
    return b

  for text, x, y in sorted(points, key=lambda p: -p[2]):
    clashes = [sum(b.overlaps(other) for other in boxes) for b in (box(o, text, x, y) for o in offsets)]
    best = offsets[clashes.index(min(clashes))]
    ax.annotate(text, (x, y), textcoords="offset points", xytext=best, fontsize=7,
                arrowprops=None if best == offsets[0] else {"arrowstyle": "-", "lw": 0.4, "alpha": 0.5})
    boxes.append(box(best, text, x, y))


def _style(i: int) -> dict:
  """Colour and line style of the i-th series: ten colours, then the same ten dashed, then dotted."""
  return {"color": f"C{i % 10}", "linestyle": ("-", "--", ":")[i // 10 % 3]}


def _save(fig, ax, path: Path, legend: bool) -> None:
  if legend:  # beside the axes, so that it hides no point
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
  fig.savefig(path, dpi=120, bbox_inches="tight")


def plot_metric_vs_params(path: Path, rows: list[dict], group_by: list[str], metric: str) -> None:
  """One series (line) per value of the first group key; each point labelled by the other keys that vary
  within its series."""
  fig, ax = plt.subplots(figsize=(7, 4.5))
  rows = [r for r in rows if f"{metric}_mean" in r]
  series: dict[str, list[dict]] = {}
  for r, name in zip(rows, short_labels(rows, group_by[:1])):
    series.setdefault(name, []).append(r)
  points = []
  for i, (name, rs) in enumerate(series.items()):
    rs = sorted(rs, key=lambda r: r["trainable_params"])
    ax.errorbar([r["trainable_params"] for r in rs], [r[f"{metric}_mean"] for r in rs],
                yerr=[r[f"{metric}_std"] or 0.0 for r in rs], marker="o", capsize=3, label=name, **_style(i))
    for r, note in zip(rs, short_labels(rs, group_by[1:])):
      if note != "runs":
        points.append((note, r["trainable_params"], r[f"{metric}_mean"]))
  ax.set_xscale("log")
  ax.set_xlabel("trainable parameters")
  ax.set_ylabel(metric + " (mean ± std over seeds)")
  ax.grid(alpha=0.3)
  place_labels(ax, points)
  _save(fig, ax, path, legend=len(series) > 1)
  plt.close(fig)


def plot_learning_curves(path: Path, runs: list[dict], group_by: list[str]) -> None:
  """Train loss against step, one colour / line style per group (the group's varying keys in the legend)."""
  fig, ax = plt.subplots(figsize=(7, 4.5))
  without = len([r for r in runs if not r["curve"]])
  runs = [r for r in runs if r["curve"]]
  if without:
    ax.set_title(f"{without} run(s) without a recorded train-loss curve (from older summaries) are not drawn",
                 fontsize=8)
  names = short_labels([r["config"] for r in runs], group_by)
  styles: dict[str, dict] = {}
  for r, name in zip(runs, names):
    new = name not in styles
    style = styles.setdefault(name, _style(len(styles)))
    ax.plot(*zip(*r["curve"]), alpha=0.7, lw=0.8, label=name if new else None, **style)
  ax.set_xlabel("step")
  ax.set_ylabel("train loss")
  ax.grid(alpha=0.3)
  _save(fig, ax, path, legend=len(styles) > 1)
  plt.close(fig)


def best_row(summary: dict, metric: str, where: dict | None = None) -> dict:
  """The row of an aggregation (summary.json) with the highest `metric` mean among the rows whose group keys equal
  `where` (e.g. a learning-rate check: the rate validation chose, `best_row(s, "eval/accuracy",
  {"peft.method": "lora"})["optimizer.lr"]`)."""
  where = where or {}
  rows = [r for r in summary["rows"] if all(r.get(k) == v for k, v in where.items())]
  if not rows or not all(f"{metric}_mean" in r for r in rows):
    raise SystemExit(f"no rows with {where} and {metric}_mean to choose from in this summary "
                     f"({summary.get('command', 'command not recorded')})")
  return max(rows, key=lambda r: r[f"{metric}_mean"])


def copy_names(dirs: list[str | Path]) -> list[str]:
  """The folder each run's copy gets: its directory's name, or, where two of `dirs` share a name, its path below
  their common folder."""
  dirs = [Path(d) for d in dirs]
  names = [d.name for d in dirs]
  if len(set(names)) < len(names):
    root = Path(os.path.commonpath([d.absolute() for d in dirs]))
    names = [str(d.absolute().relative_to(root)) for d in dirs]
  return names


def copy_runs(dirs: list[Path], dest: str | Path) -> list[Path]:
  """Copy each run directory's record (RUN_RECORD, the files it has) into dest/<name>/ (`copy_names`). Returns
  the folders written."""
  written = []
  for d, name in zip(map(Path, dirs), copy_names(dirs)):
    out = Path(dest) / name
    out.mkdir(parents=True, exist_ok=True)
    for f in RUN_RECORD:
      if (d / f).exists():
        shutil.copy(d / f, out / f)
    written.append(out)
  return written


def aggregate(inputs: list[str], out: str | Path, group_by: list[str] | None = None, metric: str = "",
              command: str = "", copy: bool = False) -> dict[str, Any]:
  dirs, summaries = find_runs(inputs)
  check_finished(dirs)
  runs = [load_run(d) for d in dirs]
  if summaries and group_by is None:
    raise SystemExit("with an earlier summary.json among the inputs, name the keys to group by (--group-by)")
  group_by = varying_keys(runs) if group_by is None else group_by
  here = {str(r["dir"]) for r in runs}  # a run whose directory is here is read from it, not from a summary
  runs += [r for s in summaries for r in load_records(s, group_by) if str(r["dir"]) not in here]
  rows = summarize(runs, group_by)
  devices = sorted({str(r["device"]) for r in runs if r["device"]})
  summary = {"rows": rows, "command": command, "device": "; ".join(devices) or "not recorded by the runs",
             "versions": versions()}
  out = Path(out)
  out.mkdir(parents=True, exist_ok=True)
  (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
  metrics = [k[:-len("_mean")] for k in rows[0] if k.endswith("_mean")] if rows else []
  write_markdown(out / "summary.md", summary, group_by, metrics)
  metric = metric or next((m for m in metrics if m.startswith("test/") and not m.endswith("/loss")),
                          metrics[0] if metrics else "")
  if metric:
    plot_metric_vs_params(out / "metric_vs_params.png", rows, group_by, metric)
  plot_learning_curves(out / "learning_curves.png", runs, group_by)
  if copy:
    copy_runs(dirs, out / "runs")
  return summary


def main(argv=None) -> int:
  argv = sys.argv[1:] if argv is None else argv
  ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  ap.add_argument("runs", nargs="+", help="run directories, globs (quote them) or sweep roots")
  ap.add_argument("--group-by", default=None, help="comma-separated dotted config keys (default: the varying ones)")
  ap.add_argument("--out", required=True)
  ap.add_argument("--metric", default="", help="the metric plotted against parameters (default: first test metric)")
  ap.add_argument("--copy-runs", action="store_true", help="copy each run's record into OUT/runs/<name>/")
  args = ap.parse_args(argv)
  group_by = None if args.group_by is None else [k for k in args.group_by.split(",") if k]
  summary = aggregate(args.runs, args.out, group_by, args.metric,
                      command=shlex.join(["python", "-m", "launch.aggregate", *argv]), copy=args.copy_runs)
  print(Path(args.out, "summary.md").read_text())
  print(f"{len(summary['rows'])} rows -> {args.out}/summary.json, summary.md, plots")
  return 0


if __name__ == "__main__":
  sys.exit(main())
