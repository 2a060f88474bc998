"""Our side: lightft_jax models, PEFT, a jitted training step, generation and choice scoring for a Case.

Training uses the project's step (`lightft_jax.train.steps`: trainable / frozen split by
`peft.trainable_filter`, gradients of the trainable part only, optax AdamW, train state donated) on a
one-device mesh; `minimal` is the same recipe without the sharding machinery, to see its overhead.
"""

from __future__ import annotations

import time
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from experiments.benchmarks.cases import Case
from lightft_jax.kinds import IGNORE_INDEX
from lightft_jax.models import Transformer, from_pretrained, get_preset
from lightft_jax.models.config import TransformerConfig
from lightft_jax.train.losses import loss_and_predictions


def model_config(case: Case, bf16: bool) -> TransformerConfig:
  """The case's preset; bfloat16 compute with float32 parameters when `bf16`, else float32."""
  return get_preset(case.preset, dtype="bfloat16" if bf16 else "float32", param_dtype="float32",
                    **case.overrides)


def build_model(cfg: TransformerConfig, case: Case, weights_dir: str) -> Transformer:
  """Our model for the case, loaded from an HF checkpoint directory (config.json + safetensors)."""
  num_labels = case.num_labels if case.task == "classification" else None
  return from_pretrained(weights_dir, task=case.task, num_labels=num_labels, dtype=cfg.dtype,
                         param_dtype=cfg.param_dtype)


def attach_peft(model: Transformer, case: Case) -> Transformer:
  from lightft_jax import peft
  return peft.apply(model, {"method": "full"} if case.method is None else dict(case.method))


def _minimal_step(model: Transformer, kind: str, batch: dict, tx: optax.GradientTransformation):
  """(jitted step, its arguments): trainable/frozen split, grads of the trainable part, donated state."""
  from lightft_jax import peft
  graphdef, trainable, frozen = nnx.split(model, peft.trainable_filter(model), ...)

  def loss_fn(tr, fr, b):
    m = nnx.merge(graphdef, tr, fr)
    ctx = {"task_ids": b["task_ids"]} if "task_ids" in b else None
    out = m(b["input_ids"], b.get("attention_mask"), ctx=ctx)
    return loss_and_predictions(kind, out, b)[0]

  def step(tr, opt, fr, b):
    loss, grads = jax.value_and_grad(loss_fn)(tr, fr, b)
    updates, opt = tx.update(grads, opt, tr)
    return (optax.apply_updates(tr, updates), opt), loss

  def wrapped(state, fr, b):
    return step(state[0], state[1], fr, b)

  return jax.jit(wrapped, donate_argnums=(0,)), ((trainable, tx.init(trainable)), frozen, batch)


def _project_step(model: Transformer, kind: str, batch: dict, tx: optax.GradientTransformation):
  """(jitted step, its arguments) from lightft_jax.train.steps on a one-device mesh."""
  from lightft_jax import peft
  from lightft_jax.train import sharding, steps
  mesh = sharding.make_mesh(devices=jax.devices()[:1])
  prog = steps.build_program(model, peft.trainable_filter(model), tx, kind=kind, mesh=mesh)
  frozen, rest = steps.place_frozen(prog, model)
  batch = jax.device_put(batch, prog.batch_sharding)
  return prog.train_step, (steps.init_state(prog, 0), frozen, rest, batch)


TRAIN_STEPS = {"project": _project_step, "minimal": _minimal_step}


def train_step(model: Transformer, case: Case, batch: dict[str, np.ndarray], which: str = "project"):
  """Builds the jitted AdamW step. Returns (step() -> None, first-step seconds, info dict).

  which: "project" (lightft_jax.train.steps) or "minimal" (the same recipe in a few lines, no sharding).
  info: trainable / total parameter counts and XLA's compiled memory analysis of the step (bytes).
  """
  from lightft_jax import peft
  if which not in TRAIN_STEPS:
    raise ValueError(f"unknown train step {which!r}; choose from {sorted(TRAIN_STEPS)}")
  kind = "classification" if case.task == "classification" else "lm"
  batch = {k: jnp.asarray(v) for k, v in batch.items()}
  if kind == "lm":  # labels aligned with the logits (the data convention): next token, -100 at the end
    ids = batch["input_ids"]
    batch["labels"] = jnp.concatenate([ids[:, 1:], jnp.full((ids.shape[0], 1), IGNORE_INDEX, ids.dtype)], 1)
  trainable, total = peft.param_counts(model)
  t0 = time.perf_counter()
  fn, args = TRAIN_STEPS[which](model, kind, batch, optax.adamw(1e-4, weight_decay=0.01))
  exe = fn.lower(*args).compile()
  args = list(args)

  def run():
    args[0], out = exe(*args)
    jax.block_until_ready((args[0], out))

  args[0], out = exe(*args)
  first_loss = float(out["loss"] if isinstance(out, dict) else out)
  first = time.perf_counter() - t0
  mem = exe.memory_analysis()
  info = {"trainable_params": trainable, "total_params": total, "train_step": which, "hlo": exe.as_text,
          "first_loss": first_loss}
  if mem is not None:
    info["xla_memory"] = {k: int(getattr(mem, k)) for k in ("argument_size_in_bytes", "output_size_in_bytes",
                                                            "alias_size_in_bytes", "temp_size_in_bytes")}
  return run, first, info


def generate_fn(model: Transformer, case: Case, prompts: np.ndarray) -> tuple[Callable, float]:
  """Greedy generation of `case.new_tokens` tokens (lightft_jax.models.generate). Returns (run, first s)."""
  from lightft_jax.models.generate import generate
  ids = jnp.asarray(prompts, jnp.int32)

  def run():
    jax.block_until_ready(generate(model, ids, max_new_tokens=case.new_tokens))

  t0 = time.perf_counter()
  run()
  return run, time.perf_counter() - t0


def score_fn(model: Transformer, case: Case, contexts: np.ndarray, choices: np.ndarray) -> tuple[Callable, float]:
  """Choice log-likelihoods (lightft_jax.icl.scoring.score_choices, context KV cache shared by choices)."""
  from lightft_jax.icl.scoring import score_choices
  ctx_list = [list(map(int, c)) for c in contexts]
  ch_list = [[list(map(int, x)) for x in item] for item in choices]

  def run():
    score_choices(model, ctx_list, ch_list, batch_size=case.batch, ctx_bucket=contexts.shape[1])

  t0 = time.perf_counter()
  run()
  return run, time.perf_counter() - t0


def peak_memory() -> int | None:
  stats = jax.local_devices()[0].memory_stats()
  return None if not stats else int(stats.get("peak_bytes_in_use", 0)) or None
