"""Where a case's step spends its time, on both sides:
`python -m experiments.benchmarks.profile --suite=cpu|gpu --case=NAME --out=DIR`.

Builds the case exactly as `run` does (same weights, batch and method), warms both sides up, then traces
`--steps` calls of ours with `jax.profiler` and of theirs with `torch.profiler`. Writes DIR/NAME.profile.md:
per side, the device (GPU) or XLA/ATen (CPU) time per op kind, and the top ops by total time. The raw JAX
trace (`*.trace.json.gz`, for Perfetto) stays under DIR/NAME.jax_trace/.
"""

from __future__ import annotations

import argparse
import collections
import gzip
import json
import os
import re
from pathlib import Path

_SUFFIX = re.compile(r"(\.\d+)+$|_\d+$")


def jax_op_times(trace_dir: str | Path) -> dict[str, float]:
  """Total microseconds per XLA op name in the newest trace under `trace_dir`: GPU kernels when the trace
  has a GPU, else the ops that XLA:CPU's executor threads ran."""
  path = sorted(Path(trace_dir).rglob("*.trace.json.gz"), key=os.path.getmtime)[-1]
  with gzip.open(path) as f:
    events = json.load(f)["traceEvents"]
  procs = {e["pid"]: e["args"]["name"] for e in events if e.get("ph") == "M" and e.get("name") == "process_name"}
  threads = {(e["pid"], e["tid"]): e["args"]["name"] for e in events
             if e.get("ph") == "M" and e.get("name") == "thread_name"}
  gpu_pids = {pid for pid, name in procs.items() if "GPU" in name}
  times: dict[str, float] = collections.Counter()
  for e in events:
    if e.get("ph") != "X":
      continue
    if gpu_pids:
      if e["pid"] not in gpu_pids or "Stream" not in threads.get((e["pid"], e["tid"]), ""):
        continue
      name = e.get("args", {}).get("hlo_op") or e["name"]
    else:
      thread = threads.get((e["pid"], e["tid"]), "")
      if "XLA" not in thread or e["name"].startswith(("end:", "ThunkExecutor", "SlinkyThreadPool")):
        continue
      name = e["name"]
    times[name] += e.get("dur", 0.0)
  return dict(times)


def torch_op_times(prof) -> dict[str, float]:
  """Total self microseconds per ATen op (device time on CUDA, CPU time otherwise)."""
  times = {}
  for ev in prof.key_averages():
    dev = getattr(ev, "self_device_time_total", 0) or getattr(ev, "self_cuda_time_total", 0)
    t = dev if dev else ev.self_cpu_time_total
    if t > 0 and not ev.key.startswith("ProfilerStep"):
      times[ev.key] = float(t)
  return times


def kind_of(name: str) -> str:
  """A coarse op kind for the summary."""
  n = name.lower()
  for kind, keys in (("attention (fused)", ("fmha", "flash", "attention", "sdpa")),
                     ("matmul", ("gemm", "matmul", "dot", "cublas", "mm", "linear", "ynn", "addmm", "bmm")),
                     ("reduction", ("reduce", "sum", "mean", "norm", "softmax")),
                     ("copy / layout", ("copy", "transpose", "concatenate", "slice", "pad", "dynamic", "clone",
                                        "contiguous", "cat", "to_copy")),
                     ("optimizer", ("adam", "foreach", "_fused")),
                     ("random", ("rng", "random", "threefry", "bernoulli", "dropout"))):
    if any(k in n for k in keys):
      return kind
  return "elementwise / fusion / other"


def table(times: dict[str, float], steps: int, top: int) -> str:
  total = sum(times.values()) or 1.0
  kinds: dict[str, float] = collections.Counter()
  grouped: dict[str, float] = collections.Counter()
  for name, t in times.items():
    kinds[kind_of(name)] += t
    grouped[_SUFFIX.sub("", name)] += t
  lines = [f"total op time per step: {total / steps / 1e3:.2f} ms", "", "| op kind | ms / step | share |",
           "|---|---:|---:|"]
  lines += [f"| {k} | {t / steps / 1e3:.2f} | {t / total:.0%} |" for k, t in sorted(kinds.items(), key=lambda x: -x[1])]
  lines += ["", "| op (numbered suffixes merged) | ms / step | share |", "|---|---:|---:|"]
  lines += [f"| `{k[:90]}` | {t / steps / 1e3:.2f} | {t / total:.1%} |"
            for k, t in sorted(grouped.items(), key=lambda x: -x[1])[:top]]
  return "\n".join(lines)


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__)
  p.add_argument("--suite", required=True)
  p.add_argument("--case", required=True)
  p.add_argument("--out", required=True)
  p.add_argument("--steps", type=int, default=3)
  p.add_argument("--top", type=int, default=25)
  p.add_argument("--train-step", default="project")
  p.add_argument("--sides", default="ours,theirs")
  p.add_argument("--cpu-threads", type=int, default=1, help="as in experiments.benchmarks.run")
  args = p.parse_args(argv)
  from experiments.benchmarks.run import _env, pin_cpus
  os.environ.update(_env(args.suite, args.cpu_threads))  # before jax and torch start
  pin_cpus(args.suite, args.cpu_threads)
  import jax
  import torch

  from experiments.benchmarks.cases import get_case
  from experiments.benchmarks.measure import device_info, prepare
  case = get_case(args.suite, args.case)
  os.makedirs(args.out, exist_ok=True)
  fns = prepare(case, args.train_step)[0]
  for fn in fns.values():  # warm-up
    fn()
    fn()
  sections = [f"# Profile of {case.title}", "", f"device: {device_info()['device_kind']}; {args.steps} steps traced "
              f"per side; jax {jax.__version__}, torch {torch.__version__}", ""]
  sides = args.sides.split(",")
  if "ours" in sides:
    trace_dir = os.path.join(args.out, f"{case.name}.jax_trace")
    with jax.profiler.trace(trace_dir):
      for _ in range(args.steps):
        fns["ours"]()
    sections += ["## ours (lightft_jax)", "", table(jax_op_times(trace_dir), args.steps, args.top), ""]
  if "theirs" in sides:
    acts = [torch.profiler.ProfilerActivity.CPU]
    if torch.cuda.is_available():
      acts.append(torch.profiler.ProfilerActivity.CUDA)
    with torch.profiler.profile(activities=acts) as prof:
      for _ in range(args.steps):
        fns["theirs"]()
    sections += ["## theirs (transformers + peft)", "", table(torch_op_times(prof), args.steps, args.top), ""]
  text = "\n".join(sections)
  Path(args.out, f"{case.name}.profile.md").write_text(text)
  print(text)
  return 0


if __name__ == "__main__":
  raise SystemExit(main())
