"""Compile time against depth: scan-over-layers (scan_layers=True) against unrolled layers, with LoRA attached.

A decoder (tiny-llama widened to d_model 256) of 4 / 16 / 32 layers with LoRA r=8 on q and v (on a scanned model
the LoRA factors are stacked [L, ...] like the layers; lightft_jax/peft/core.py `per_layer`). For each depth and
layout, in one process on the CPU, this times

- train step: `jax.jit(train_step).lower(...)` (tracing + lowering) and `.compile()` of the project's LoRA
  training step (`lightft_jax.train.steps.build_program`: trainable/frozen split, AdamW, one-device mesh);
- forward: the same for a jitted forward pass (logits of a batch).

Compile time, not step time: nothing is executed, and each repeat builds a fresh model and program (new jitted
functions, so no in-memory cache hit; no persistent compilation cache is configured). A depth-1 model is
compiled first so that one-off start-up costs do not land on the first row.

  python -m experiments.benchmarks.compile_depth --out=experiments/benchmarks/results/compile_depth_cpu
writes OUT/results.json (every sample, device, versions, date, command, load averages) and OUT/results.md.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shlex
import statistics
import sys
import time
from pathlib import Path

from experiments.benchmarks import report

MODEL = dict(d_model=256, n_heads=4, n_kv_heads=2, d_ff=688, vocab_size=1024, max_positions=128)
LORA = {"method": "lora", "r": 8, "alpha": 16.0, "targets": "qv"}


def loadavg() -> list[float]:
  return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]


def measure(depth: int, scan: bool, batch: int, seq: int) -> dict:
  """Seconds to lower and to compile the LoRA train step and the forward pass of a fresh model."""
  import jax
  import numpy as np
  import optax
  from flax import nnx

  from lightft_jax import peft
  from lightft_jax.models import Transformer, get_preset
  from lightft_jax.train import sharding as shd
  from lightft_jax.train import steps

  model = Transformer(get_preset("tiny-llama", n_layers=depth, scan_layers=scan, **MODEL), task="lm",
                      rngs=nnx.Rngs(0))
  peft.apply(model, LORA)
  ids = np.random.RandomState(0).randint(3, MODEL["vocab_size"], (batch, seq)).astype(np.int32)
  out = {"depth": depth, "scan_layers": scan, "trainable_params": peft.param_counts(model)[0]}

  graphdef, state = nnx.split(model)
  forward = jax.jit(lambda state, ids: nnx.merge(graphdef, state)(ids)["logits"])
  t0 = time.perf_counter()
  lowered = forward.lower(state, ids)
  t1 = time.perf_counter()
  lowered.compile()
  t2 = time.perf_counter()
  out.update(forward_lower_s=t1 - t0, forward_compile_s=t2 - t1)

  mesh = shd.make_mesh(1, 1, 1, devices=jax.devices()[:1])
  prog = steps.build_program(model, peft.trainable_filter(model), optax.adamw(1e-4, weight_decay=0.01), kind="lm",
                             mesh=mesh)
  train_state = steps.init_state(prog, 0)
  frozen, rest = steps.place_frozen(prog)
  data = shd.global_batch({"input_ids": ids, "attention_mask": np.ones_like(ids), "labels": np.roll(ids, -1, 1)},
                          mesh)
  t0 = time.perf_counter()
  lowered = prog.train_step.lower(train_state, frozen, rest, data)
  t1 = time.perf_counter()
  lowered.compile()
  t2 = time.perf_counter()
  out.update(train_lower_s=t1 - t0, train_compile_s=t2 - t1)
  return out


def table(rows: list[dict], depths: list[int]) -> str:
  def med(depth, scan, key):
    vals = [r[key] for r in rows if r["depth"] == depth and r["scan_layers"] == scan]
    return statistics.median(vals)

  lines = ["| layers | train step, unrolled (s) | train step, scanned (s) | ratio | forward, unrolled (s) | "
           "forward, scanned (s) | ratio |", "|---:|---:|---:|---:|---:|---:|---:|"]
  for d in depths:
    tu = med(d, False, "train_lower_s") + med(d, False, "train_compile_s")
    ts = med(d, True, "train_lower_s") + med(d, True, "train_compile_s")
    fu = med(d, False, "forward_lower_s") + med(d, False, "forward_compile_s")
    fs = med(d, True, "forward_lower_s") + med(d, True, "forward_compile_s")
    lines.append(f"| {d} | {tu:.2f} | {ts:.2f} | {tu / ts:.1f}x | {fu:.2f} | {fs:.2f} | {fu / fs:.1f}x |")
  lines += ["", "Each figure is lowering (tracing) + XLA compilation, the median over repeats; split out:", "",
            "| layers | layout | train lower | train compile | forward lower | forward compile |",
            "|---:|---|---:|---:|---:|---:|"]
  for d in depths:
    for scan in (False, True):
      lines.append(f"| {d} | {'scanned' if scan else 'unrolled'} | {med(d, scan, 'train_lower_s'):.2f} | "
                   f"{med(d, scan, 'train_compile_s'):.2f} | {med(d, scan, 'forward_lower_s'):.2f} | "
                   f"{med(d, scan, 'forward_compile_s'):.2f} |")
  return "\n".join(lines)


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--out", required=True)
  p.add_argument("--depths", default="4,16,32")
  p.add_argument("--repeats", type=int, default=1)
  p.add_argument("--batch", type=int, default=2)
  p.add_argument("--seq", type=int, default=64)
  args = p.parse_args(argv)
  import jax

  depths = [int(d) for d in args.depths.split(",")]
  command = "python -m experiments.benchmarks.compile_depth " + " ".join(shlex.quote(a) for a in
                                                                        (argv if argv is not None else sys.argv[1:]))
  date = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
  load = [loadavg()]
  measure(1, True, args.batch, args.seq)  # warm-up: one-off start-up costs
  measure(1, False, args.batch, args.seq)
  rows = []
  for _ in range(args.repeats):
    for d in depths:
      for scan in (True, False):
        r = measure(d, scan, args.batch, args.seq)
        rows.append(r)
        print(json.dumps(r), flush=True)
  load.append(loadavg())
  meta = {"command": command, "date": date, "device": {"backend": jax.default_backend(),
                                                        "devices": [str(d) for d in jax.devices()],
                                                        "cpu_count": os.cpu_count(), "machine": platform.machine()},
          "versions": report.versions("jax", "jaxlib", "flax", "numpy", "optax"),
          "loadavg_start_end": load, "model": {"preset": "tiny-llama", **MODEL},
          "peft": LORA, "batch": args.batch, "seq": args.seq, "repeats": args.repeats}
  out = Path(args.out)
  out.mkdir(parents=True, exist_ok=True)
  (out / "results.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
  md_text = "\n".join([
      "# Compile time against depth: scanned vs unrolled layers (LoRA, CPU)", "",
      f"Command: `{command}`  ", f"Date: {date}  ",
      f"Device: {meta['device']['backend']} ({meta['device']['cpu_count']} cores visible, {platform.machine()}); "
      f"load average (1/5/15 min) at start {load[0]}, at end {load[1]} (a shared machine: other jobs ran)  ",
      "Versions: " + ", ".join(f"{k} {v}" for k, v in meta["versions"].items()) + "  ",
      f"Model: tiny-llama preset with {MODEL}, LoRA r=8 on q and v; batch {args.batch} x {args.seq} tokens; "
      f"{args.repeats} repeat(s) per point.", "",
      table(rows, depths), ""])
  (out / "results.md").write_text(md_text)
  print(md_text)


if __name__ == "__main__":
  main()
