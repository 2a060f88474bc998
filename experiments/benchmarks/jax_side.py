"""Our side: lightft_jax models, PEFT, a jitted training step, generation and choice scoring for a Case.

The training step is the minimal one the training design prescribes (until `lightft_jax.train` has a
reusable step): `nnx.split` into trainable / frozen with `peft.trainable_filter`, `jax.value_and_grad`
over the trainable state only, optax AdamW, `jax.jit` with the trainable and optimizer state donated.
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
from lightft_jax.models import Transformer, get_preset
from lightft_jax.models.config import TransformerConfig
from lightft_jax.train.losses import loss_and_predictions


def model_config(case: Case, bf16: bool) -> TransformerConfig:
  """The case's preset; bfloat16 compute with float32 parameters when `bf16`, else float32."""
  return get_preset(case.preset, dtype="bfloat16" if bf16 else "float32", param_dtype="float32",
                    **case.overrides)


def build_model(cfg: TransformerConfig, case: Case, weights_dir: str | None = None) -> Transformer:
  """Our model for the case: loaded from an HF safetensors directory when given, else random."""
  num_labels = case.num_labels if case.task == "classification" else None
  if weights_dir is not None:
    from lightft_jax.models.hf import from_pretrained
    return from_pretrained(weights_dir, task=case.task, num_labels=num_labels, dtype=cfg.dtype)
  return Transformer(cfg, task=case.task, num_labels=num_labels, rngs=nnx.Rngs(0))


def attach_peft(model: Transformer, case: Case) -> Transformer:
  from lightft_jax import peft
  return peft.apply(model, {"method": "full"} if case.method is None else dict(case.method))


def count(state) -> int:
  return int(sum(x.size for x in jax.tree.leaves(state)))


def train_step(model: Transformer, case: Case, batch: dict[str, np.ndarray]):
  """Builds the jitted step. Returns (step() -> None, first-step seconds, info dict).

  info: trainable / total parameter counts and XLA's compiled memory analysis of the step (bytes).
  """
  from lightft_jax import peft
  graphdef, trainable, frozen = nnx.split(model, peft.trainable_filter(model), ...)
  tx = optax.adamw(1e-4, weight_decay=0.01)
  opt_state = tx.init(trainable)
  kind = "classification" if case.task == "classification" else "lm"
  batch = {k: jnp.asarray(v) for k, v in batch.items()}
  if kind == "lm":
    batch["labels"] = batch["input_ids"]

  def loss_fn(tr, fr, b):
    m = nnx.merge(graphdef, tr, fr)
    ctx = {"task_ids": b["task_ids"]} if "task_ids" in b else None
    out = m(b["input_ids"], b.get("attention_mask"), ctx=ctx)
    return loss_and_predictions(kind, out, b)[0]

  def step(tr, opt, fr, b):
    loss, grads = jax.value_and_grad(loss_fn)(tr, fr, b)
    updates, opt = tx.update(grads, opt, tr)
    return optax.apply_updates(tr, updates), opt, loss

  compiled = jax.jit(step, donate_argnums=(0, 1))
  t0 = time.perf_counter()
  exe = compiled.lower(trainable, opt_state, frozen, batch).compile()
  state = {"tr": trainable, "opt": opt_state}

  def run():
    state["tr"], state["opt"], loss = exe(state["tr"], state["opt"], frozen, batch)
    jax.block_until_ready((state["tr"], loss))

  run()
  first = time.perf_counter() - t0
  mem = exe.memory_analysis()
  info = {"trainable_params": count(trainable), "total_params": count(trainable) + count(frozen),
          "hlo_text": exe.as_text}
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
