"""`train(config, workdir)`: the whole run, from config to results.json, resumable.

config -> task + tokenizer + model (+ PEFT) -> mesh + sharded program -> restore or init -> steps with
logging, eval, keep-best and periodic checkpoints -> final eval on the eval and test splits -> results.json,
metrics.jsonl, plots. SIGTERM saves a checkpoint and returns. A resume first checks that the config still
defines the same trained state (`checkpoint.check_resume`).

Non-finite steps: the train step never applies an update whose loss, gradient or value is NaN/inf, so every
saved state is finite. Such a step is skipped (its batch is consumed) up to `train.skip_nonfinite` times in
the whole run; the next one ends the run: results.json gets `"status": "diverged"` (the last train loss as
null when it was not finite) and `TrainingDiverged` names the step and the last checkpoint, which is finite.
All JSON is strict: a NaN or infinity that reaches a results or metrics file is an error.
"""

from __future__ import annotations

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

from lightft_jax.kinds import get_kind
from lightft_jax.train import distributed, sharding as shd
from lightft_jax.train.build import build_model, build_tokenizer
from lightft_jax.train.checkpoint import Checkpointer, abstract_like, check_resume, state_config
from lightft_jax.train.evaluate import evaluate
from lightft_jax.train.logger import (MetricLogger, Progress, Throughput, flops_per_token, peak_tflops,
                                     summary_table)
from lightft_jax.train.optim import make_optimizer, make_schedule
from lightft_jax.train.steps import build_program, init_state, params_digest, place_frozen

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


def _make_loader(data, task, split, cfg, tokenizer, family, *, train: bool):
  bs = cfg.batch_size if train else (cfg.eval.batch_size or cfg.batch_size)
  return data.make_loader(task, split, tokenizer=tokenizer, batch_size=bs, max_length=cfg.model.max_length,
                          seed=cfg.seed, shuffle=train, num_epochs=None if train else 1,
                          process_index=jax.process_index(), process_count=jax.process_count(),
                          model_family=cfg.task.model_family or family, data_dir=cfg.task.data_dir or None,
                          drop_remainder=train, padding=cfg.task.padding)


def _meta(cfg: ml_collections.ConfigDict, step: int, loader_states: list, skipped: list[int]) -> dict:
  """What a checkpoint needs beside the trainable state to continue the run: the config that defines the
  state (checked on resume), the data position of every process and the steps skipped as non-finite."""
  return {"step": step, "total_steps": cfg.total_steps, "config": state_config(cfg),
          "loader_states": loader_states, "skipped_steps": list(skipped)}


def finite_or_none(x: float | None) -> float | None:
  """`x`, or None when it is NaN or infinite (strict JSON has no NaN)."""
  return x if x is not None and math.isfinite(x) else None


def write_json(path: Path, obj: Any) -> None:
  """Strict JSON (a NaN or infinity raises ValueError, a non-JSON value TypeError), written atomically."""
  text = json.dumps(obj, indent=2, allow_nan=False) + "\n"
  tmp = path.with_suffix(".tmp")
  tmp.write_text(text)
  tmp.replace(path)


def train(config: ml_collections.ConfigDict, workdir: str | Path) -> dict[str, Any]:
  """Runs (or resumes) training as `config` says, writing the run directory. Returns the results dict."""
  from lightft_jax import data, peft  # data imports TensorFlow: only when a run starts
  t0 = time.time()
  workdir = Path(workdir).absolute()
  distributed.initialize(config)
  main = distributed.is_main()
  if main:
    workdir.mkdir(parents=True, exist_ok=True)

  task = data.get_task(config.task.name, **config.task.options.to_dict())
  model = build_model(config.model, task=get_kind(task.kind).head, num_labels=task.num_labels, seed=config.seed)
  peft.apply(model, config.peft)
  trainable, total = peft.param_counts(model)
  tokenizer = build_tokenizer(config.model)
  family = model.cfg.arch  # the model family the data is formatted for

  mesh = shd.make_mesh(config.mesh.data, config.mesh.fsdp, config.mesh.tensor)
  rules = shd.merge_rules(config.mesh.rules)
  filt = peft.trainable_filter(model)
  tx = make_optimizer(config.optimizer, config.schedule, nnx.to_pure_dict(nnx.state(model, filt)),
                      config.total_steps)
  lr_at = make_schedule(config.schedule, config.optimizer.lr, config.total_steps)
  prog = build_program(model, filt, tx, kind=task.kind, mesh=mesh, rules=rules,
                       accum_steps=config.optimizer.grad_accum_steps)
  state = init_state(prog, config.seed)
  frozen, rest = place_frozen(prog, model)

  ckpt = Checkpointer(workdir / "checkpoints", max_to_keep=config.checkpoint.max_to_keep,
                      async_save=config.checkpoint.async_save,
                      best_mode=config.eval.mode if config.checkpoint.keep_best else None)
  loader = _make_loader(data, task, config.task.train_split, config, tokenizer, family, train=True)
  step, skipped = 0, []
  restored = ckpt.restore_latest(abstract_like(state), check_meta=lambda meta: check_resume(meta, config))
  if restored is not None:
    step, state, _, meta = restored
    if len(meta["loader_states"]) != jax.process_count():
      raise ValueError(f"the checkpoint at step {step} was written by {len(meta['loader_states'])} processes; "
                       f"this run has {jax.process_count()}: each process resumes its own data position")
    loader.set_state(meta["loader_states"][jax.process_index()])
    skipped = list(meta.get("skipped_steps", []))
    log.info("resumed from step %d in %s", step, ckpt.directory)
  if main:  # after the resume check: a refused config does not overwrite the run's
    write_json(workdir / "config.json", config.to_dict())
  logger = MetricLogger(workdir, config, enabled=main)
  logger.truncate_after(step)
  local_rows = (config.eval.batch_size or config.batch_size) // jax.process_count()

  def run_eval(split: str, limit: int = 0, report: bool = False) -> dict[str, float]:
    batches = _make_loader(data, task, split, config, tokenizer, family, train=False)
    return evaluate(prog, state["params"], frozen, rest, batches, task=task, local_rows=local_rows, limit=limit,
                    report=report, tokenizer=tokenizer,
                    max_new_tokens=config.eval.max_new_tokens or config.model.max_length)

  def save(at: int, force: bool = False) -> None:
    ckpt.save(at, state, None, _meta(config, at, distributed.allgather_json(loader.get_state()), skipped),
              force=force)

  best_name = config.eval.metric
  status, train_loss, diverged = "completed", None, ""
  progress = Progress(config.total_steps, step, enabled=main and config.logging.progress)
  peak = peak_tflops(config.logging.peak_tflops, jax.devices()[0].device_kind)
  speed = Throughput(flops_per_token=flops_per_token(total, trainable),
                     peak_flops=peak * 1e12 * jax.device_count() if peak else None)
  first: dict[str, float] = {}  # time_to_first_step_s, held until the next train row is logged
  batches = iter(loader)
  try:
    with _Preemption() as preemption:
      while step < config.total_steps:
        if preemption.requested:
          save(step, force=True)
          status = "preempted"
          log.warning("SIGTERM: saved a checkpoint at step %d in %s; exiting", step, ckpt.directory)
          break
        batch = next(batches)
        state, m = prog.train_step(state, frozen, rest, shd.global_batch(batch, mesh, rules))
        train_loss = float(m["loss"])
        step += 1
        if not bool(m["ok"]):
          skipped.append(step)
          what = f"step {step} is not finite (loss {train_loss}, gradient norm {float(m['grad_norm'])})"
          if len(skipped) > config.train.skip_nonfinite:
            ckpt.wait()
            good = ckpt.steps()
            status = "diverged"
            diverged = (f"{what}; stopped after {len(skipped)} non-finite steps (train.skip_nonfinite="
                        f"{config.train.skip_nonfinite}). No non-finite update was applied or saved; the last "
                        f"checkpoint is {'step %d' % good[-1] if good else 'none'} in {ckpt.directory}")
            log.error("%s", diverged)
            break
          log.warning("%s; skipped, parameters unchanged (%d of train.skip_nonfinite=%d)", what, len(skipped),
                      config.train.skip_nonfinite)
        tokens = int(np.sum(batch["attention_mask"])) * jax.process_count()
        rates = speed.update(tokens, config.batch_size)
        progress.update(train_loss, rates)
        if "time_to_first_step_s" in rates:
          first, rates = rates, {}
        if step % config.log_every == 0 or step == config.total_steps:
          logger.log(step, "train", {"loss": finite_or_none(train_loss),
                                     "grad_norm": finite_or_none(float(m["grad_norm"])),
                                     "lr": float(lr_at(step - 1)), **first, **rates})
          first = {}
        if config.eval_every and step % config.eval_every == 0 and step < config.total_steps:
          metrics = run_eval(config.task.eval_split, config.task.eval_limit)
          logger.log(step, "eval", metrics)
          best_name = best_name or next((k for k in metrics if k not in ("loss", "examples")), "loss")
          ckpt.save_best(step, state, None, _meta(config, step, [], skipped), metrics[best_name])
        if config.checkpoint_every and step % config.checkpoint_every == 0:
          save(step)
    if status == "completed":
      save(step, force=True)
  finally:
    progress.close()
    ckpt.wait()

  results: dict[str, Any] = {"status": status, "step": step, "train_loss": finite_or_none(train_loss),
                             "skipped_steps": skipped,
                             "trainable_params": int(trainable), "total_params": int(total),
                             "trainable_percent": 100.0 * trainable / max(total, 1),
                             "trainable_params_sha256": params_digest(state["params"]),
                             "model": config.model.name, "peft": config.peft.to_dict(), "task": task.name}
  if status == "completed":
    results["eval"] = run_eval(config.task.eval_split, config.task.eval_limit) if config.task.eval_split else {}
    if results["eval"]:
      logger.log(step, "eval", results["eval"])
      best_name = best_name or next((k for k in results["eval"] if k not in ("loss", "examples")), "loss")
      ckpt.save_best(step, state, None, _meta(config, step, [], skipped), results["eval"][best_name])
    if config.task.test_split:
      results["test"] = run_eval(config.task.test_split, report=True)
      report = results["test"].pop("report", None)
      if report and main:
        (workdir / "classification_report.txt").write_text(report)
        print(f"classification report ({config.task.test_split}):\n{report}", flush=True)
      logger.log(step, "test", results["test"])
  ckpt.wait()
  ckpt.close()
  results["wall_time_s"] = time.time() - t0
  if main:
    write_json(workdir / "results.json", results)
    if config.logging.plots:
      from lightft_jax.plots import plot_metrics
      plot_metrics(workdir / "metrics.jsonl", workdir / "training.png")
    print(summary_table(results), flush=True)
  logger.summary(results)
  logger.close()
  if diverged:
    raise TrainingDiverged(diverged)
  return results
