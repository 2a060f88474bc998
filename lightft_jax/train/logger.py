"""Run logging: metrics.jsonl (always, strict JSON), W&B (offline by default), a tqdm progress bar, a summary table.

Only process 0 writes or logs; other processes get a logger whose methods do nothing.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import ml_collections


def _jsonable(v: Any) -> Any:
  try:
    return float(v) if hasattr(v, "__float__") and not isinstance(v, (int, bool, str)) else v
  except TypeError:
    return v


class MetricLogger:
  """Appends {"step", "split", **metrics} lines to DIR/metrics.jsonl and mirrors them to W&B."""

  def __init__(self, workdir: str | Path, config: ml_collections.ConfigDict, *, enabled: bool = True):
    self.enabled = enabled
    self.path = Path(workdir) / "metrics.jsonl"
    self.run = None
    if not enabled:
      return
    mode = os.environ.get("WANDB_MODE") if config.wandb.mode == "offline" and \
        os.environ.get("WANDB_MODE") in ("online", "disabled") else config.wandb.mode
    if mode != "disabled":
      import secrets

      import wandb
      id_file = Path(workdir) / "wandb_id.txt"
      run_id = id_file.read_text().strip() if id_file.exists() else secrets.token_hex(4)
      id_file.write_text(run_id)
      self.run = wandb.init(project=config.wandb.project, name=config.wandb.name or Path(workdir).name,
                            id=run_id, resume="allow", mode=mode, dir=str(workdir), config=config.to_dict(),
                            tags=list(config.wandb.tags), reinit="finish_previous")

  def truncate_after(self, step: int) -> None:
    """Drops lines logged after `step` (a resumed run logs those steps again)."""
    if not self.enabled or not self.path.exists():
      return
    lines = [l for l in self.path.read_text().splitlines() if l.strip() and json.loads(l)["step"] <= step]
    self.path.write_text("".join(l + "\n" for l in lines))

  def log(self, step: int, split: str, metrics: dict[str, Any]) -> None:
    if not self.enabled:
      return
    row = {"step": int(step), "split": split, **{k: _jsonable(v) for k, v in metrics.items()}}
    with self.path.open("a") as f:
      f.write(json.dumps(row, allow_nan=False) + "\n")  # strict: a NaN metric is an error, not a "NaN" token
    if self.run is not None:
      self.run.log({f"{split}/{k}": v for k, v in row.items() if k not in ("step", "split")}, step=int(step))

  def summary(self, results: dict[str, Any]) -> None:
    if self.run is not None:
      flat = {k: v for k, v in results.items() if isinstance(v, (int, float, str))}
      for split in ("eval", "test"):
        flat.update({f"{split}/{k}": v for k, v in (results.get(split) or {}).items()})
      self.run.summary.update(flat)

  def close(self) -> None:
    if self.run is not None:
      self.run.finish()
      self.run = None


def host_cpu() -> str:
  """The host's CPU model, widest vector extension and core count ("AMD EPYC, AVX-512, 2 cores"), recorded beside
  the device in results.json: XLA:CPU compiles for the host's instruction set, so float results (and a training
  run's trajectory) can differ between CPU models while they are bit-identical on one."""
  import platform
  info = {}
  try:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
      key, _, value = line.partition(":")
      info.setdefault(key.strip(), value.strip())
  except OSError:
    pass
  flags = set(info.get("flags", "").split())
  isa = next((name for flag, name in (("avx512f", "AVX-512"), ("avx2", "AVX2")) if flag in flags), "")
  parts = [info.get("model name") or platform.processor() or platform.machine(), isa, f"{os.cpu_count()} cores"]
  return ", ".join(p for p in parts if p)


# Dense bf16 peak FLOP/s per device (TFLOP/s), by substring of `jax.Device.device_kind`.
PEAK_TFLOPS = {"H200": 989.0, "H100": 989.0, "A100": 312.0}


def peak_tflops(configured: float | None, device_kind: str) -> float | None:
  """`logging.peak_tflops` when set, else the table entry matching the device kind, else None (no MFU)."""
  if configured:
    return float(configured)
  return next((v for k, v in PEAK_TFLOPS.items() if k.lower() in device_kind.lower()), None)


def flops_per_token(total_params: int, trainable_params: int) -> float:
  """Analytic training FLOPs per token: forward 2N, backward to the activations 2N, weight gradients 2N only
  for the trainable parameters (so 6N for full fine-tuning, about 4N for small PEFT). Attention score FLOPs
  are left out, as in the usual 6N estimate."""
  return 4.0 * total_params + 2.0 * trainable_params


class Throughput:
  """Tokens/s, examples/s (and MFU) measured from the end of the first step, so compilation is excluded.

  `update(tokens, examples, now)` after every step returns the rates so far; after the first step it
  returns {"time_to_first_step_s"} instead (time from construction to the end of step one: data, tracing,
  compilation and the step itself). MFU = tokens/s * `flops_per_token` / (peak FLOP/s of all devices).
  """

  def __init__(self, *, flops_per_token: float | None = None, peak_flops: float | None = None,
               now: float | None = None):
    self.t0 = time.perf_counter() if now is None else now
    self.flops_per_token, self.peak_flops = flops_per_token, peak_flops
    self.t_first, self.tokens, self.examples = None, 0, 0

  def update(self, tokens: int, examples: int, now: float | None = None) -> dict[str, float]:
    now = time.perf_counter() if now is None else now
    if self.t_first is None:
      self.t_first = now
      return {"time_to_first_step_s": now - self.t0}
    self.tokens += tokens
    self.examples += examples
    dt = max(now - self.t_first, 1e-9)
    rates = {"tokens_per_s": self.tokens / dt, "examples_per_s": self.examples / dt}
    if self.flops_per_token and self.peak_flops:
      rates["mfu"] = rates["tokens_per_s"] * self.flops_per_token / self.peak_flops
    return rates


class Progress:
  """tqdm bar over steps with loss, tokens/s, examples/s and ETA."""

  def __init__(self, total: int, initial: int, *, enabled: bool):
    from tqdm.auto import tqdm
    self.bar = tqdm(total=total, initial=initial, disable=not enabled, dynamic_ncols=True, unit="step")

  def update(self, loss: float, rates: dict[str, float]) -> None:
    post = {"loss": f"{loss:.4f}"}
    if "tokens_per_s" in rates:
      post.update(tok_s=f"{rates['tokens_per_s']:.0f}", ex_s=f"{rates['examples_per_s']:.1f}")
    self.bar.set_postfix(refresh=False, **post)
    self.bar.update(1)

  def close(self) -> None:
    self.bar.close()


def summary_table(results: dict[str, Any]) -> str:
  """Plain-text table of the final results."""
  from tabulate import tabulate
  rows = [("trainable params", f"{results['trainable_params']:,} ({results['trainable_percent']:.3f}%)"),
          ("total params", f"{results['total_params']:,}"), ("steps", results["step"]),
          ("final train loss", results.get("train_loss"))]
  for split in ("eval", "test"):
    rows += [(f"{split} {k}", v) for k, v in (results.get(split) or {}).items()]
  rows += [("wall time (s)", results.get("wall_time_s")), ("params sha256", results["trainable_params_sha256"][:16])]
  return tabulate(rows, headers=("", "value"), floatfmt=".4f")
