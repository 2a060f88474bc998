"""`train(config, workdir)`: the whole run, from config to results.json, resumable. Every training objective
(supervised tasks, in-context regression, meta-learning; `train.workload`) runs through it.

`setup`: config -> workload (model + PEFT, batches, objective, evaluation) -> mesh + sharded program ->
restore (after checking that the config still defines the same trained state, `checkpoint.check_resume`) or
init. `run_steps`: steps with logging, eval, keep-best and periodic checkpoints; SIGTERM saves a checkpoint
and returns; `eval.patience` stops early (status "early_stopped", kept on resume). `epochs` sets total_steps
from the training split's size. `finish`: final eval on the eval and test splits -> results.json,
metrics.jsonl, plots.

Non-finite steps: the train step never applies an update whose loss, gradient or value is NaN/inf, so every
saved state is finite. Such a step is skipped (its batch is consumed) up to `train.skip_nonfinite` times in
the whole run; the next one ends the run: results.json gets `"status": "diverged"` (the last train loss as
null when it was not finite) and `TrainingDiverged` names the step and the last checkpoint, which is finite.
All JSON is strict: a NaN or infinity that reaches a results or metrics file is an error.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import signal
import time
from pathlib import Path
from typing import Any

import jax
import ml_collections
import numpy as np
from flax import nnx

from lightft_jax.train import distributed, sharding as shd
from lightft_jax.train.checkpoint import Checkpointer, abstract_like, check_resume, state_config
from lightft_jax.train.logger import (MetricLogger, Progress, Throughput, flops_per_token, host_cpu, peak_tflops,
                                     summary_table)
from lightft_jax.train.optim import make_optimizer, make_schedule
from lightft_jax.train.steps import build_program, init_state, params_digest, place_frozen
from lightft_jax.train.workload import Workload, build_workload

log = logging.getLogger(__name__)


class TrainingDiverged(FloatingPointError):
  """More than `train.skip_nonfinite` steps had a NaN or infinite loss, gradient or update."""


class _Preemption:
  """Turns SIGTERM into a flag checked between steps."""

  def __init__(self):
    self.requested = False
    self.previous = None

  def __enter__(self):
    try:
      self.previous = signal.signal(signal.SIGTERM, self._handle)
    except ValueError:  # not the main thread: no handler
      self.previous = None
    return self

  def _handle(self, signum, frame):
    self.requested = True

  def __exit__(self, *exc):
    if self.previous is not None:
      signal.signal(signal.SIGTERM, self.previous)


def primary_metric(config: ml_collections.ConfigDict, metrics: dict[str, Any]) -> str:
  """The metric that ranks checkpoints and runs: `eval.metric`, else the first metric other than the loss and
  the example count, else the loss."""
  return config.eval.metric or next((k for k in metrics if k not in ("loss", "examples", "report")), "loss")


def finite_or_none(x: float | None) -> float | None:
  """`x`, or None when it is NaN or infinite (strict JSON has no NaN)."""
  return x if x is not None and math.isfinite(x) else None


def write_json(path: Path, obj: Any) -> None:
  """Strict JSON (a NaN or infinity raises ValueError, a non-JSON value TypeError), written atomically."""
  text = json.dumps(obj, indent=2, allow_nan=False) + "\n"
  tmp = path.with_suffix(".tmp")
  tmp.write_text(text)
  tmp.replace(path)


@dataclasses.dataclass
class Run:
  """A training run in progress: everything `setup` builds and `run_steps` / `finish` use."""
  config: ml_collections.ConfigDict
  workdir: Path
  work: Workload
  prog: Any
  state: Any
  frozen: Any
  rest: Any
  ckpt: Checkpointer
  logger: MetricLogger
  lr_at: Any
  trainable: int
  total: int
  t0: float
  step: int = 0
  skipped: list = dataclasses.field(default_factory=list)
  status: str = "completed"
  train_loss: float | None = None
  diverged: str = ""
  best: float | None = None  # the best periodic eval.metric so far (early stopping)
  evals_without_improvement: int = 0
  eval_at_start: dict | None = None

  @property
  def main(self) -> bool:
    return distributed.is_main()

  def evaluate(self, split: str, limit: int = 0, report: bool = False) -> dict[str, Any]:
    if self.work.evaluate is None or not split:
      return {}
    return self.work.evaluate(self.prog, self.state["params"], self.frozen, self.rest, split, limit, report)

  def periodic_eval(self) -> dict[str, Any]:
    """Evaluation on `task.eval_split` during training: logged, its classification report written to
    reports/eval_step_N.txt (`eval.report_every_eval`), and counted for early stopping (`eval.patience`)."""
    config = self.config
    metrics = self.evaluate(config.task.eval_split, config.task.eval_limit, report=config.eval.report_every_eval)
    report = metrics.pop("report", None)
    if not metrics:
      return metrics
    if report and self.main:
      (self.workdir / "reports").mkdir(exist_ok=True)
      (self.workdir / "reports" / f"eval_step_{self.step}.txt").write_text(report)
    self.logger.log(self.step, "eval", metrics)
    value = metrics[primary_metric(config, metrics)]
    better = self.best is None or (value > self.best if config.eval.mode == "max" else value < self.best)
    self.best, self.evals_without_improvement = (value, 0) if better else (self.best,
                                                                           self.evals_without_improvement + 1)
    return metrics

  def meta(self) -> dict:
    """What a checkpoint needs beside the trainable state and the data position to continue the run: the
    config that defines the state (checked on resume), the steps skipped as non-finite and the early-stopping
    count."""
    return {"step": self.step, "total_steps": self.config.total_steps, "config": state_config(self.config),
            "skipped_steps": list(self.skipped), "best": self.best,
            "evals_without_improvement": self.evals_without_improvement,
            "early_stopped": self.status == "early_stopped"}

  def restore_meta(self, meta: dict) -> None:
    self.skipped = list(meta.get("skipped_steps", []))
    self.best, self.evals_without_improvement = meta.get("best"), meta.get("evals_without_improvement", 0)
    if meta.get("early_stopped"):
      self.status = "early_stopped"

  def save(self, force: bool = False) -> None:
    loader = {"process_states": distributed.allgather_json(self.work.batches.get_state())}
    self.ckpt.save(self.step, self.state, loader, self.meta(), force=force)

  def save_best(self, metrics: dict[str, Any]) -> None:
    self.ckpt.save_best(self.step, self.state, None, self.meta(), metrics[primary_metric(self.config, metrics)])


def setup(config: ml_collections.ConfigDict, workdir: str | Path) -> Run:
  """Workload, mesh and sharded program, then the newest checkpoint restored (after checking that the config
  still defines the same trained state) or a fresh state; writes config.json."""
  t0 = time.time()
  workdir = Path(workdir).absolute()
  distributed.initialize(config)
  if distributed.is_main():
    workdir.mkdir(parents=True, exist_ok=True)
  work = build_workload(config)
  if config.epochs:
    if work.steps_per_epoch is None:
      raise ValueError(f"epochs={config.epochs}: the {config.train.objective} objective's data has no epochs "
                       "(set total_steps)")
    config.total_steps = max(1, math.ceil(config.epochs * work.steps_per_epoch()))
    log.info("epochs=%s: %d steps", config.epochs, config.total_steps)
  from lightft_jax import peft
  trainable, total = peft.param_counts(work.model)
  mesh = shd.make_mesh(config.mesh.data, config.mesh.fsdp, config.mesh.tensor)
  filt = peft.trainable_filter(work.model)
  tx = make_optimizer(config.optimizer, config.schedule, nnx.to_pure_dict(nnx.state(work.model, filt)),
                      config.total_steps)
  prog = build_program(work.model, filt, tx, mesh=mesh, kind=work.kind, objective=work.objective,
                       gradient=work.gradient, rules=shd.merge_rules(config.mesh.rules),
                       accum_steps=config.optimizer.grad_accum_steps)
  state = init_state(prog, config.seed)
  frozen, rest = place_frozen(prog, work.model)
  ckpt = Checkpointer(workdir / "checkpoints", max_to_keep=config.checkpoint.max_to_keep,
                      async_save=config.checkpoint.async_save,
                      best_mode=config.eval.mode if config.checkpoint.keep_best else None)
  step, meta = 0, {}
  restored = ckpt.restore_latest(abstract_like(state), check_meta=lambda meta: check_resume(meta, config))
  if restored is not None:
    step, state, loader, meta = restored
    states = loader.get("process_states", [])
    if len(states) != jax.process_count():
      raise ValueError(f"the checkpoint at step {step} was written by {len(states)} processes; this run has "
                       f"{jax.process_count()}: each process resumes its own data position")
    work.batches.set_state(states[jax.process_index()])
    log.info("resumed from step %d in %s", step, ckpt.directory)
  if distributed.is_main():  # after the resume check: a refused config does not overwrite the run's
    write_json(workdir / "config.json", config.to_dict())
  logger = MetricLogger(workdir, config, enabled=distributed.is_main())
  logger.truncate_after(step)
  run = Run(config=config, workdir=workdir, work=work, prog=prog, state=state, frozen=frozen, rest=rest,
            ckpt=ckpt, logger=logger, lr_at=make_schedule(config.schedule, config.optimizer.lr, config.total_steps),
            trainable=int(trainable), total=int(total), t0=t0, step=step)
  run.restore_meta(meta)
  return run


def run_steps(run: Run) -> None:
  """Train steps until `total_steps`, SIGTERM (checkpoint and stop: "preempted") or one non-finite step too
  many ("diverged"), with logging, periodic evaluation, keep-best and periodic checkpoints."""
  config, prog = run.config, run.prog
  mesh, rules = prog.mesh, shd.merge_rules(config.mesh.rules)
  progress = Progress(config.total_steps, run.step, enabled=run.main and config.logging.progress)
  peak = peak_tflops(config.logging.peak_tflops, jax.devices()[0].device_kind)
  speed = Throughput(flops_per_token=flops_per_token(run.total, run.trainable),
                     peak_flops=peak * 1e12 * jax.device_count() if peak else None)
  first: dict[str, float] = {}  # time_to_first_step_s, held until the next train row is logged
  batches = iter(run.work.batches)
  if config.eval.at_start and run.step == 0:
    run.eval_at_start = run.periodic_eval()
    run.best, run.evals_without_improvement = None, 0  # the untrained model is no checkpoint to keep
  try:
    with _Preemption() as preemption:
      while run.step < config.total_steps and run.status == "completed":
        if preemption.requested:
          run.save(force=True)
          run.status = "preempted"
          log.warning("SIGTERM: saved a checkpoint at step %d in %s; exiting", run.step, run.ckpt.directory)
          break
        batch = next(batches)
        run.state, m = prog.train_step(run.state, run.frozen, run.rest, shd.global_batch(batch, mesh, rules))
        run.train_loss = float(m["loss"])
        run.step += 1
        if not bool(m["ok"]) and not _skip_nonfinite(run, m):
          break
        tokens = int(np.sum(batch["attention_mask"])) * jax.process_count() if "attention_mask" in batch else 0
        rates = speed.update(tokens, config.batch_size)
        progress.update(run.train_loss, rates)
        if "time_to_first_step_s" in rates:
          first, rates = rates, {}
        if run.step % config.log_every == 0 or run.step == config.total_steps:
          extra = run.work.log_fields() if run.work.log_fields else {}
          run.logger.log(run.step, "train", {"loss": finite_or_none(run.train_loss),
                                             "grad_norm": finite_or_none(float(m["grad_norm"])),
                                             "lr": float(run.lr_at(run.step - 1)), **first, **rates, **extra})
          first = {}
        if config.eval_every and run.step % config.eval_every == 0 and run.step < config.total_steps:
          metrics = run.periodic_eval()
          if metrics:
            run.save_best(metrics)
          if config.eval.patience and run.evals_without_improvement >= config.eval.patience:
            run.status = "early_stopped"
            log.warning("early stopping at step %d: %d evaluations without improving %s (best %s)", run.step,
                        run.evals_without_improvement, primary_metric(config, metrics), run.best)
            break
        if config.checkpoint_every and run.step % config.checkpoint_every == 0:
          run.save()
    if run.status in ("completed", "early_stopped"):
      run.save(force=True)
  finally:
    progress.close()
    run.ckpt.wait()


def _skip_nonfinite(run: Run, m: dict) -> bool:
  """Records a non-finite step; False (and status "diverged") when it is one more than allowed."""
  run.skipped.append(run.step)
  limit = run.config.train.skip_nonfinite
  what = f"step {run.step} is not finite (loss {run.train_loss}, gradient norm {float(m['grad_norm'])})"
  if len(run.skipped) > limit:
    run.ckpt.wait()
    good = run.ckpt.steps()
    run.status = "diverged"
    run.diverged = (f"{what}; stopped after {len(run.skipped)} non-finite steps (train.skip_nonfinite={limit}). "
                    f"No non-finite update was applied or saved; the last checkpoint is "
                    f"{'step %d' % good[-1] if good else 'none'} in {run.ckpt.directory}")
    log.error("%s", run.diverged)
    return False
  log.warning("%s; skipped, parameters unchanged (%d of train.skip_nonfinite=%d)", what, len(run.skipped), limit)
  return True


def finish(run: Run) -> dict[str, Any]:
  """Final evaluation on the eval and test splits (completed runs), results.json, plots and the summary.
  Raises TrainingDiverged after writing the results of a diverged run."""
  config = run.config
  results: dict[str, Any] = {"status": run.status, "step": run.step, "train_loss": finite_or_none(run.train_loss),
                             "skipped_steps": run.skipped, "trainable_params": run.trainable,
                             "total_params": run.total, "trainable_percent": 100.0 * run.trainable / max(run.total, 1),
                             "trainable_params_sha256": params_digest(run.state["params"]),
                             "model": config.model.name, "peft": config.peft.to_dict(), "task": run.work.name,
                             "objective": config.train.objective,
                             "device": f"{jax.device_count()} x {jax.devices()[0].device_kind}", "host": host_cpu()}
  if run.eval_at_start:
    results["eval_at_start"] = run.eval_at_start
  if run.status in ("completed", "early_stopped"):
    results["eval"] = run.evaluate(config.task.eval_split, config.task.eval_limit)
    if results["eval"]:
      run.logger.log(run.step, "eval", results["eval"])
      run.save_best(results["eval"])
    test = run.evaluate(config.task.test_split, report=True)
    if test:
      report = test.pop("report", None)
      if report and run.main:
        (run.workdir / "classification_report.txt").write_text(report)
        print(f"classification report ({config.task.test_split}):\n{report}", flush=True)
      results["test"] = test
      run.logger.log(run.step, "test", test)
    if run.work.finish is not None:
      results.update(run.work.finish(run.prog, run.state["params"], run.frozen, run.rest, run.workdir))
  run.ckpt.wait()
  run.ckpt.close()
  results["wall_time_s"] = time.time() - run.t0
  if run.main:
    write_json(run.workdir / "results.json", results)
    if config.logging.plots:
      from lightft_jax.plots import plot_metrics
      plot_metrics(run.workdir / "metrics.jsonl", run.workdir / "training.png")
    print(summary_table(results), flush=True)
  run.logger.summary(results)
  run.logger.close()
  if run.diverged:
    raise TrainingDiverged(run.diverged)
  return results


def train(config: ml_collections.ConfigDict, workdir: str | Path) -> dict[str, Any]:
  """Runs (or resumes) training as `config` says, writing the run directory. Returns the results dict."""
  run = setup(config, workdir)
  run_steps(run)
  return finish(run)
