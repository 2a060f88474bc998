"""LoRA on a quantized frozen base (QLoRA-style) against the float base: the quickstart's accuracy, step time and
peak memory, on the real all-MiniLM-L6-v2.

- accuracy: the quickstart (`configs/quickstart.py:baselines=False`, LoRA r=8 on every linear layer, 200 steps,
  seed 0) run through `lightft_jax.main` on the float32 and the nf4 base (`--config.model.quantize=nf4`); test accuracy of
  the whole test split, read once at the end of each run (its settings were chosen on validation with the
  float base).
- step time: the quickstart's jitted LoRA train step on one batch, bases alternating (timing.py), in one process.
- peak memory: XLA's buffer assignment for that compiled step (`compiled.memory_analysis()`: arguments +
  outputs + temporaries - aliased), and the bytes of the frozen weights the step reads.

  python -m experiments.benchmarks.quant_lora --out=experiments/benchmarks/results/quant_lora_cpu
writes OUT/results.json (figures, commands, device, versions, date, load averages) and OUT/results.md.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

from experiments.benchmarks import report

BASES = ("float32", "int8", "nf4")
ACCURACY_BASES = ("float32", "nf4")  # the QLoRA question: does an nf4 base cost accuracy?
QUICKSTART = "configs/quickstart.py:baselines=False"


def run_command(base: str, workdir: Path, steps: int) -> list[str]:
  cmd = [sys.executable, "-m", "lightft_jax.main", f"--config={QUICKSTART},steps={steps}", f"--workdir={workdir}"]
  return cmd + ([f"--config.model.quantize={base}"] if base != "float32" else [])


def accuracy(base: str, workdir: Path, steps: int) -> dict:
  """Runs (or reuses a finished) quickstart run on `base`; its test metrics, trainable params and wall time."""
  results = workdir / "results.json"
  cmd = run_command(base, workdir, steps)
  if not results.exists():
    subprocess.run(cmd, check=True)
  r = json.loads(results.read_text())
  if r.get("status") != "completed":
    raise RuntimeError(f"{workdir}: status {r.get('status')!r}, not completed")
  return {"command": shlex.join(["python"] + cmd[1:]), "test": r["test"], "trainable_params": r["trainable_params"],
          "wall_time_s": r.get("wall_time_s")}


def step_figures(steps: int, repeats: int, warmup: int, tmp: Path) -> tuple[dict, dict]:
  """Per base: compiled memory of the LoRA train step and frozen-weight bytes; alternating step times."""
  import jax
  from experiments.benchmarks.timing import summarize, time_alternating
  from lightft_jax.train import config_lib, loop
  from lightft_jax.train import sharding as shd

  runs, memory = {}, {}
  for base in BASES:
    overrides = [("wandb.mode", "disabled")] + ([("model.quantize", base)] if base != "float32" else [])
    config = config_lib.load_config(f"{QUICKSTART},steps={steps}", overrides)
    run = loop.setup(config, tmp / base)
    batch = shd.global_batch(next(iter(run.work.batches)), run.prog.mesh, shd.merge_rules(config.mesh.rules))
    compiled = run.prog.train_step.lower(run.state, run.frozen, run.rest, batch).compile()
    m = compiled.memory_analysis()
    peak = m.argument_size_in_bytes + m.output_size_in_bytes + m.temp_size_in_bytes - m.alias_size_in_bytes
    memory[base] = {"step_peak_bytes": int(peak), "temp_bytes": int(m.temp_size_in_bytes),
                    "argument_bytes": int(m.argument_size_in_bytes),
                    "frozen_bytes": int(sum(x.nbytes for x in jax.tree.leaves(run.frozen)))}
    runs[base] = [run, batch]

  def step(base):
    def go():
      run, batch = runs[base]
      run.state, out = run.prog.train_step(run.state, run.frozen, run.rest, batch)
      jax.block_until_ready(out["loss"])
    return go

  samples = time_alternating({b: step(b) for b in BASES}, repeats=repeats, warmup=warmup, inner=1)
  for run, _ in runs.values():
    run.ckpt.close()
  return memory, {b: summarize(s) for b, s in samples.items()}


def main(argv=None):
  ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  ap.add_argument("--out", required=True)
  ap.add_argument("--runs", default="runs/quant_lora", help="work directories of the accuracy runs (reused)")
  ap.add_argument("--steps", type=int, default=200)
  ap.add_argument("--repeats", type=int, default=10)
  ap.add_argument("--warmup", type=int, default=2)
  ap.add_argument("--skip_accuracy", action="store_true")
  args = ap.parse_args(argv)
  command = "python -m experiments.benchmarks.quant_lora " + shlex.join(sys.argv[1:] if argv is None else argv)
  load_before = os.getloadavg()
  memory, times = step_figures(args.steps, args.repeats, args.warmup, Path(args.runs) / "_step_timing")
  acc = {} if args.skip_accuracy else {b: accuracy(b, Path(args.runs) / b, args.steps) for b in ACCURACY_BASES}
  import jax
  dev = jax.devices()[0]
  meta = {"command": command, "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
          "device": {"platform": dev.platform, "device_kind": dev.device_kind}, "cpus": os.cpu_count(),
          "versions": report.versions("jax", "jaxlib", "flax", "optax"),
          "load_average_before": load_before, "load_average_after": os.getloadavg(),
          "model": "all-MiniLM-L6-v2", "steps": args.steps, "repeats": args.repeats, "warmup": args.warmup}
  results = {"meta": meta, "memory": memory, "step_s": times, "accuracy": acc}
  out = Path(args.out)
  out.mkdir(parents=True, exist_ok=True)
  (out / "results.json").write_text(json.dumps(results, indent=2))
  (out / "results.md").write_text(markdown(results))
  print(markdown(results))


def markdown(r: dict) -> str:
  m, mem, t, acc = r["meta"], r["memory"], r["step_s"], r["accuracy"]
  mib = lambda b: f"{b / 2 ** 20:.1f}"
  f32 = t["float32"]["median_s"]
  lines = [f"`{m['command']}`", "",
           f"{m['date']}, {m['device']['device_kind']} ({m['cpus']} cores), {m['model']}; "
           + ", ".join(f"{k} {v}" for k, v in m["versions"].items())
           + f". Load average {m['load_average_before'][0]:.1f} before, {m['load_average_after'][0]:.1f} after "
           "(a shared machine: step times are indicative, the ratios more than the absolute values).", "",
           "| base | test accuracy | test macro F1 | LoRA step median s (p25-p75) | vs float32 | "
           "step peak MiB (XLA) | frozen weights MiB |", "|---|---:|---:|---:|---:|---:|---:|"]
  for b in BASES:
    a = acc.get(b, {}).get("test", {})
    fmt = lambda k: f"{a[k]:.4f}" if k in a else "-"
    lines.append(f"| {b} | {fmt('accuracy')} | {fmt('macro_f1')} | {t[b]['median_s']:.3f} "
                 f"({t[b]['p25_s']:.3f}-{t[b]['p75_s']:.3f}) | {t[b]['median_s'] / f32:.2f}x | "
                 f"{mib(mem[b]['step_peak_bytes'])} | {mib(mem[b]['frozen_bytes'])} |")
  if acc:
    lines += ["", "Accuracy runs (each a separate process, test split read once at the end):", ""]
    lines += [f"- {b}: `{acc[b]['command']}`" for b in acc]
  lines += ["", "Step peak = XLA's buffer assignment for the compiled train step (arguments + outputs + "
            "temporaries - donated aliases); embeddings, norms and the head stay float32 in every base."]
  return "\n".join(lines) + "\n"


if __name__ == "__main__":
  main()
