"""Quantized frozen base (models/quant.py) on the real all-MiniLM-L6-v2: stored bytes and forward time.

- bytes: the 36 attention / MLP kernels inside the 6 blocks (what `quantize=` converts), float32 vs int8
  (block 64) vs nf4 (block 64) with and without double quantization of the block scales (block 256), counted
  from the stored arrays; plus every array of the model (embeddings, norms, biases and pooler stay float32).
- error: hidden states of one batch against float32 (relative Frobenius error, mean token cosine).
- time: jitted forward (`model(ids, mask)`, hidden states) per batch, float32 vs int8 vs nf4, alternating
  after warm-up (experiments/benchmarks/timing.py) in one process on the CPU.

  python -m experiments.benchmarks.quant --out=experiments/benchmarks/results/quant_cpu
writes OUT/results.json (figures, device, versions, date, command, load averages) and OUT/results.md.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shlex
import sys
from pathlib import Path

from experiments.benchmarks import report


def array_bytes(model) -> int:
  import jax
  from flax import nnx
  return sum(int(x.size) * x.dtype.itemsize for x in jax.tree.leaves(nnx.state(model)) if hasattr(x, "dtype"))


def main(argv=None):
  ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  ap.add_argument("--out", required=True)
  ap.add_argument("--batch", type=int, default=32)
  ap.add_argument("--seq", type=int, default=128)
  ap.add_argument("--repeats", type=int, default=10)
  ap.add_argument("--warmup", type=int, default=2)
  args = ap.parse_args(argv)
  command = "python -m experiments.benchmarks.quant " + shlex.join(sys.argv[1:] if argv is None else argv)

  import jax
  import numpy as np
  from flax import nnx

  from experiments.benchmarks.timing import summarize, time_alternating
  from lightft_jax.models import assets, from_pretrained, quant
  from lightft_jax.models.layers import Dense

  load_before = os.getloadavg()
  path = assets.minilm_dir()
  models = {"float32": from_pretrained(path), "int8": from_pretrained(path, quantize="int8"),
            "nf4": from_pretrained(path, quantize="nf4"),
            "nf4_no_double_quant": from_pretrained(path, quantize="nf4", double_quant=False)}
  body = [m for p, m in nnx.iter_modules(models["float32"]) if isinstance(m, Dense) and ".layers." in
          ".".join(map(str, p))]
  kernel_bytes = {"float32": sum(int(m.kernel[...].size) * 4 for m in body)}
  for name in ("int8", "nf4", "nf4_no_double_quant"):
    kernel_bytes[name] = quant.stored_bytes(models[name])
  model_bytes = {name: array_bytes(m) for name, m in models.items()}
  n_weights = sum(int(m.kernel[...].size) for m in body)

  rng = np.random.default_rng(0)
  ids = rng.integers(1000, 20000, (args.batch, args.seq), dtype=np.int32)
  mask = np.ones_like(ids)
  forward = nnx.jit(lambda m, i, a: m(i, a)["hidden_states"])
  ref = np.asarray(forward(models["float32"], ids, mask))
  error = {}
  for name in ("int8", "nf4", "nf4_no_double_quant"):
    out = np.asarray(forward(models[name], ids, mask))
    cos = (out * ref).sum(-1) / np.linalg.norm(out, axis=-1) / np.linalg.norm(ref, axis=-1)
    error[name] = {"relative_error": float(np.linalg.norm(out - ref) / np.linalg.norm(ref)),
                   "mean_token_cosine": float(cos.mean())}

  timed = ("float32", "int8", "nf4")
  fns = {n: (lambda m=models[n]: forward(m, ids, mask).block_until_ready()) for n in timed}
  samples = time_alternating(fns, repeats=args.repeats, warmup=args.warmup, inner=1)
  times = {n: summarize(s) for n, s in samples.items()}
  load_after = os.getloadavg()

  dev = jax.devices()[0]
  meta = {"command": command, "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
          "device": {"platform": dev.platform, "device_kind": dev.device_kind}, "versions":
          report.versions("jax", "jaxlib", "flax", "numpy"),
          "host": platform.node(), "cpus": os.cpu_count(), "load_average_before": load_before,
          "load_average_after": load_after, "model": "all-MiniLM-L6-v2 (lightft_jax.models.assets.minilm_dir())",
          "batch": args.batch, "seq": args.seq, "repeats": args.repeats, "warmup": args.warmup}
  results = {"meta": meta, "quantized_weights": n_weights, "kernel_bytes": kernel_bytes, "model_bytes": model_bytes,
             "error_vs_float32": error, "forward_s": times, "forward_samples_s": samples}
  out_dir = Path(args.out)
  out_dir.mkdir(parents=True, exist_ok=True)
  (out_dir / "results.json").write_text(json.dumps(results, indent=2))
  (out_dir / "results.md").write_text(markdown(results))
  print(markdown(results))


def markdown(r: dict) -> str:
  m, kb, mb = r["meta"], r["kernel_bytes"], r["model_bytes"]
  mib = lambda b: f"{b / 2 ** 20:.2f}"
  lines = [f"`{m['command']}`", "",
           f"{m['date']}, {m['device']['device_kind']} ({m['cpus']} cores), {m['model']}, batch {m['batch']} x "
           f"{m['seq']} tokens, median of {m['repeats']} alternating samples after {m['warmup']} warm-up; "
           + ", ".join(f"{k} {v}" for k, v in m["versions"].items()) + ".", "",
           f"The machine was shared with other jobs (load average {m['load_average_before'][0]:.1f} before, "
           f"{m['load_average_after'][0]:.1f} after): the times are indicative, the ratios more than the "
           "absolute values.", "",
           f"Bytes of the {r['quantized_weights']:,} weights of the attention and MLP kernels (stored arrays), "
           "and of every array of the model:", "",
           "| storage | kernel MiB | vs float32 | bits / weight | model MiB | error of hidden states (rel. / cosine) |",
           "|---|---|---|---|---|---|"]
  for name in ("float32", "int8", "nf4_no_double_quant", "nf4"):
    err = r["error_vs_float32"].get(name)
    e = "-" if err is None else f"{err['relative_error']:.3f} / {err['mean_token_cosine']:.4f}"
    label = {"nf4": "nf4 + double quant", "nf4_no_double_quant": "nf4"}.get(name, name)
    lines.append(f"| {label} | {mib(kb[name])} | {kb[name] / kb['float32']:.3f} | "
                 f"{8 * kb[name] / r['quantized_weights']:.2f} | {mib(mb[name])} | {e} |")
  lines += ["", "Forward pass (jitted, hidden states) per batch:", "",
            "| weights | median s | p25-p75 s | vs float32 |", "|---|---|---|---|"]
  f32 = r["forward_s"]["float32"]["median_s"]
  for name, t in r["forward_s"].items():
    lines.append(f"| {name} | {t['median_s']:.3f} | {t['p25_s']:.3f}-{t['p75_s']:.3f} | "
                 f"{t['median_s'] / f32:.2f}x |")
  lines += ["", "Dequantization runs inside the jitted matmul on every call (no fused low-bit kernel). Its cost "
            "grows with the weights, not the tokens, so it shows at small batches and is lost in the noise at "
            "large ones; the saving is memory. The MiniLM LoRA quickstart accuracy with an nf4 base is not "
            "measured here."]
  return "\n".join(lines) + "\n"


if __name__ == "__main__":
  main()
