"""Benchmarks against transformers + peft: `python -m experiments.benchmarks.run --suite=cpu|gpu --out=DIR`.

Each case runs in its own subprocess (so peak-memory counters belong to that case alone); inside it our
side and the PyTorch side alternate after warm-up. Writes DIR/results.json and DIR/results.md.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shlex
import subprocess
import sys

from experiments.benchmarks import report

DEFAULTS = {"cpu": dict(repeats=5, warmup=1, inner=1), "gpu": dict(repeats=7, warmup=2, inner=5),
            "smoke": dict(repeats=1, warmup=1, inner=1)}


def _env(suite: str, cpu_threads: int) -> dict:
  env = dict(os.environ)
  env["XLA_PYTHON_CLIENT_PREALLOCATE"] = "false"  # JAX and PyTorch share the GPU in one process
  env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
  env.setdefault("HF_HUB_OFFLINE", "1")
  if suite != "gpu":
    env["JAX_PLATFORMS"] = "cpu"
    env["CUDA_VISIBLE_DEVICES"] = ""
    if cpu_threads > 0:  # both sides get the same cores (pin_cpus); torch reads OMP_NUM_THREADS
      env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = str(cpu_threads)
      if cpu_threads == 1:
        env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") + " --xla_cpu_multi_thread_eigen=false").strip()
  return env


def pin_cpus(suite: str, cpu_threads: int) -> None:
  """CPU suites: confine this process to `cpu_threads` cores, so that neither library can use more (XLA:CPU
  runs its matmul kernels on its own thread pool, which the thread-count variables do not limit)."""
  if suite != "gpu" and cpu_threads > 0 and hasattr(os, "sched_setaffinity"):
    os.sched_setaffinity(0, sorted(os.sched_getaffinity(0))[:cpu_threads])


def one_case(args) -> None:
  """Child process: runs one case and writes its result JSON."""
  pin_cpus(args.suite, args.cpu_threads)
  from experiments.benchmarks.cases import get_case
  from experiments.benchmarks.measure import device_info, run_case
  case = get_case(args.suite, args.one_case)
  res = run_case(case, repeats=args.repeats, warmup=args.warmup, inner=args.inner, train_step=args.train_step)
  res["device"] = device_info()
  with open(args.result, "w") as f:
    json.dump(res, f, default=str, allow_nan=False)


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__)
  p.add_argument("--suite", required=True, help="cpu | gpu | smoke")
  p.add_argument("--out", required=True, help="directory for results.json and results.md")
  p.add_argument("--cases", default="", help="comma-separated case names (default: all of the suite)")
  p.add_argument("--repeats", type=int)
  p.add_argument("--warmup", type=int)
  p.add_argument("--inner", type=int, help="calls per timed sample")
  p.add_argument("--train-step", default="project", help="our step: project (lightft_jax.train.steps) | minimal")
  p.add_argument("--cpu-threads", type=int, default=1,
                 help="CPU suites: threads for each side (0: library defaults; 1 suits a shared machine)")
  p.add_argument("--timeout", type=int, default=900, help="seconds per case")
  p.add_argument("--one-case", help=argparse.SUPPRESS)
  p.add_argument("--result", help=argparse.SUPPRESS)
  args = p.parse_args(argv)
  from experiments.benchmarks.cases import get_suite
  cases = get_suite(args.suite)
  for k, v in DEFAULTS.get(args.suite, DEFAULTS["cpu"]).items():
    if getattr(args, k) is None:
      setattr(args, k, v)
  if args.one_case:
    one_case(args)
    return 0
  wanted = [c for c in args.cases.split(",") if c]
  unknown = set(wanted) - {c.name for c in cases}
  if unknown:
    raise SystemExit(f"unknown cases {sorted(unknown)}; suite {args.suite!r} has {[c.name for c in cases]}")
  cases = [c for c in cases if not wanted or c.name in wanted]
  os.makedirs(args.out, exist_ok=True)
  command = "python -m experiments.benchmarks.run " + shlex.join(sys.argv[1:] if argv is None else argv)
  meta = {"suite": args.suite, "command": command,
          "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
          "versions": report.versions("jax", "jaxlib", "flax", "optax", "torch", "transformers", "peft"),
          "loadavg": os.getloadavg(), "repeats": args.repeats, "warmup": args.warmup,
          "inner": args.inner, "train_step": args.train_step, "cpu_threads": args.cpu_threads,
          "host": platform.node(), "cpus": os.cpu_count()}
  results = []
  for case in cases:
    path = os.path.join(args.out, f"{case.name}.json")
    cmd = [sys.executable, "-m", "experiments.benchmarks.run", f"--suite={args.suite}", f"--out={args.out}",
           f"--one-case={case.name}", f"--result={path}", f"--repeats={args.repeats}", f"--warmup={args.warmup}",
           f"--inner={args.inner}", f"--train-step={args.train_step}", f"--cpu-threads={args.cpu_threads}"]
    print(f"== {case.name}", flush=True)
    try:
      proc = subprocess.run(cmd, env=_env(args.suite, args.cpu_threads), timeout=args.timeout, capture_output=True,
                            text=True)
      err = None if proc.returncode == 0 else (proc.stderr.strip().splitlines()[-1:]
                                               or ["exit " + str(proc.returncode)])
      if err:
        sys.stderr.write(proc.stderr[-4000:])
    except subprocess.TimeoutExpired:
      err = [f"timed out after {args.timeout}s"]
    if err:
      results.append({"case": case.name, "title": case.title, "error": err[0]})
    else:
      with open(path) as f:
        results.append(json.load(f))
    print(json.dumps({k: results[-1].get(k) for k in ("error", "speedup", "ours_first_step_s")}), flush=True)
  meta["device"] = next((r["device"] for r in results if "device" in r), {})
  print(report.write(args.out, meta, results))
  return 0


if __name__ == "__main__":
  sys.exit(main())
