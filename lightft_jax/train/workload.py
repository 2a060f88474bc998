"""What the trainer trains: a `Workload` per objective, looked up by the config's `train.objective`.

One trainer (`train.loop`) runs every objective; an objective differs only in what it hands the loop:

  model       the NNX model, PEFT already attached (what trains is `peft.trainable_filter(model)`)
  batches     an endless iterator of numpy batch dicts with `get_state()` / `set_state(state)` (JSON), so
              a resume continues the data where the checkpoint left it
  kind        the task kind (`lightft_jax.kinds`) whose loss and evaluator apply, or None when the
              workload brings its own `objective` and `evaluate`
  objective   (model, batch, train) -> (loss, aux), replacing the kind's loss   (`train.steps.Objective`)
  gradient    replaces the gradient of the loss, e.g. a first-order meta-gradient (`train.steps.GradientEstimator`)
  evaluate    (Program, params, frozen, rest, split, limit, report) -> metrics; None: no evaluation
  finish      (Program, params, frozen, rest, workdir) -> extra results.json fields (curves, plots)
  log_fields  () -> extra fields of each logged train row (e.g. a curriculum's current size)
  steps_per_epoch  () -> optimizer steps in one pass over the training data (for `epochs=`); None: endless

Built-in objectives (`WORKLOADS`): `supervised` (a task from `lightft_jax.data`: classification, NER, QA,
seq2seq, LM, ...), `icl_regression` (Garg et al.'s in-context regression, `icl.regression`), `metaicl`,
`reptile` and `fomaml` (meta-learning over tasks, `icl.meta`). `register_workload(name, builder)` adds one;
a builder is `builder(config) -> Workload`, named as "module:attribute" so that this module imports no
data or ICL code.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import jax
import ml_collections

from lightft_jax.kinds import Ref, get_kind, resolve


@dataclasses.dataclass
class Workload:
  model: Any
  batches: Any
  name: str
  kind: str | None = None
  objective: Callable | None = None
  gradient: Callable | None = None
  evaluate: Callable | None = None
  finish: Callable | None = None
  log_fields: Callable[[], dict] | None = None
  steps_per_epoch: Callable[[], int] | None = None


_WORKLOADS: dict[str, Ref] = {
    "supervised": "lightft_jax.train.workload:supervised",
    "icl_regression": "lightft_jax.icl.regression:regression_workload",
    "metaicl": "lightft_jax.icl.meta:metaicl_workload",
    "reptile": "lightft_jax.icl.meta:first_order_workload",
    "fomaml": "lightft_jax.icl.meta:first_order_workload",
}


def register_workload(name: str, builder: Ref, *, replace: bool = False) -> None:
  if name in _WORKLOADS and not replace:
    raise ValueError(f"training objective {name!r} is already registered")
  _WORKLOADS[name] = builder


def objectives() -> list[str]:
  return list(_WORKLOADS)


def build_workload(config: ml_collections.ConfigDict) -> Workload:
  """The workload of `config.train.objective`; an unknown name lists the known ones."""
  name = config.train.objective
  if name not in _WORKLOADS:
    raise ValueError(f"unknown train.objective {name!r}; known objectives: {objectives()}")
  return resolve(_WORKLOADS[name])(config)


def supervised(config: ml_collections.ConfigDict) -> Workload:
  """A task from `lightft_jax.data` on a model from `config.model` with `config.peft`."""
  from lightft_jax import data, peft  # data imports TensorFlow: only when a run starts
  from lightft_jax.train.build import build_model, build_tokenizer
  from lightft_jax.train.evaluate import evaluate
  from lightft_jax.train.samples import samples_hook
  task = data.get_task(config.task.name, **config.task.options.to_dict())
  model = build_model(config.model, task=get_kind(task.kind).head, num_labels=task.num_labels, seed=config.seed)
  peft.apply(model, config.peft)
  tokenizer = build_tokenizer(config.model)
  family = config.task.model_family or model.cfg.arch  # the model family the data is formatted for

  def loader(split: str, train: bool):
    bs = config.batch_size if train else (config.eval.batch_size or config.batch_size)
    return data.make_loader(task, split, tokenizer=tokenizer, batch_size=bs, max_length=config.model.max_length,
                            seed=config.seed, shuffle=train, num_epochs=None if train else 1,
                            process_index=jax.process_index(), process_count=jax.process_count(),
                            model_family=family, data_dir=config.task.data_dir or None,
                            drop_remainder=train, padding=config.task.padding)

  local_rows = (config.eval.batch_size or config.batch_size) // jax.process_count()

  def run_eval(prog, params, frozen, rest, split, limit=0, report=False):
    return evaluate(prog, params, frozen, rest, loader(split, train=False), task=task, local_rows=local_rows,
                    limit=limit, report=report, tokenizer=tokenizer,
                    max_new_tokens=config.eval.max_new_tokens or config.model.max_length)

  def steps_per_epoch() -> int:
    from lightft_jax.data.formats import lm_document
    source = task.open(config.task.train_split, config.task.data_dir or None)
    if get_kind(task.kind).packed:  # packed rows: the split's tokens over the row length
      tokens = sum(len(lm_document(source[i]["text"], tokenizer, config.model.max_length)["input_ids"])
                   for i in range(len(source)))
      return max(1, -(-tokens // config.model.max_length) // config.batch_size)
    return max(1, len(source) // config.batch_size)

  return Workload(model=model, batches=loader(config.task.train_split, train=True), name=task.name,
                  kind=task.kind, evaluate=run_eval, steps_per_epoch=steps_per_epoch,
                  finish=samples_hook(config, task, tokenizer))  # LM samples when the config has `samples`
