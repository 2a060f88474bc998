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
seq2seq, LM, ...; or a multi-task mixture of classification tasks when `task.mixture` is set: `multitask`),
`icl_regression` (Garg et al.'s in-context regression, `icl.regression`), `metaicl`, `reptile` and `fomaml`
(meta-learning over tasks, `icl.meta`). `register_workload(name, builder)` adds one; a builder is
`builder(config) -> Workload`, named as "module:attribute" so that this module imports no data or ICL code.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any, Callable

import jax
import ml_collections

from lightft_jax.kinds import Ref, get_kind, resolve

log = logging.getLogger(__name__)


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


FORMS = {"classification": ("verbalized",)}  # kinds a task of a kind may be trained as (`task.kind`)


def with_form(task, kind: str, template: str, answer_prefix: str | None = None):
  """`task` trained as another compatible kind (`task.kind`, e.g. "verbalized": PET-style prompt + verbalizer
  for a classification task on a causal LM), with a prompt `task.template` (str.format over its fields) and, for a
  decoder, `task.answer_prefix` after it (None: the task's own)."""
  if kind and kind != task.kind:
    if kind not in FORMS.get(task.kind, ()):
      raise ValueError(f"task {task.name!r} of kind {task.kind!r} cannot be trained as task.kind={kind!r}; "
                       f"allowed: {list(FORMS.get(task.kind, ()))}")
    task = dataclasses.replace(task, kind=kind)
  if answer_prefix is not None:
    task = dataclasses.replace(task, answer_prefix=answer_prefix)
  return dataclasses.replace(task, template=template) if template else task


def supervised(config: ml_collections.ConfigDict) -> Workload:
  """A task from `lightft_jax.data` on a model from `config.model` with `config.peft`; several tasks when the
  config names a `task.mixture` (`multitask`)."""
  if config.task.get("mixture"):
    return multitask(config)
  from lightft_jax import data, peft  # data imports TensorFlow: only when a run starts
  from lightft_jax.train.build import build_model, build_tokenizer
  from lightft_jax.train.evaluate import evaluate
  from lightft_jax.train.samples import samples_hook
  task = data.get_task(config.task.name, **config.task.options.to_dict())
  task = with_form(task, config.task.get("kind", ""), config.task.get("template", ""), config.task.get("answer_prefix"))
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


# ---------------------------------------------------------------------------------------------------------
# Multi-task mixtures

MIXTURE_DEFAULTS = {"mixture_sampling": "proportional", "temperature": 1.0, "mixture_size_cap": 0,
                    "mixture_heads": "per_task", "mixture_window": 1000}
CONTEXT_DEFAULTS = {"held_out_task": "", "context_k": 0, "context_encoder": ""}


def label_space_objective(kind: str, offsets, sizes) -> Callable:
  """The kind's loss with each example's softmax over its own task's classes: task t = batch["task_ids"] owns
  classes [offsets[t], offsets[t] + sizes[t]) of the model's logits (`data.mixture.Mixture`); every other class
  is masked out. Labels in the batch and the returned predictions are the task's own class ids."""
  import jax.numpy as jnp
  import numpy as np
  from lightft_jax.train.steps import split_inputs
  spec = get_kind(kind)
  offsets, sizes = np.asarray(offsets, np.int32), np.asarray(sizes, np.int32)

  def objective(model, batch, train):
    inputs, ctx = split_inputs(batch)
    out = model(**inputs, ctx=ctx)
    ids = batch["task_ids"]
    off, n = jnp.asarray(offsets)[ids], jnp.asarray(sizes)[ids]
    logits = out["logits"].astype(jnp.float32)
    cls = jnp.arange(logits.shape[-1])
    own = (cls >= off[:, None]) & (cls < (off + n)[:, None])
    logits = jnp.where(own, logits, -1e9)
    loss, aux = spec.loss_and_predictions({**out, "logits": logits}, {**batch, "labels": batch["labels"] + off})
    return loss, {**aux, "predictions": aux["predictions"] - off}

  return objective


def _peft_parts(section) -> list[dict]:
  """Every method dict inside a PEFT section (a compose section's parts, or the section itself)."""
  plain = section.to_dict() if hasattr(section, "to_dict") else section
  if isinstance(plain, (list, tuple)):
    return [p for x in plain for p in _peft_parts(x)]
  if not isinstance(plain, dict):
    return []
  parts = [v for k, v in plain.items() if isinstance(v, dict) and k not in ("overrides",)]
  return [plain] + [p for x in parts for p in _peft_parts(x)]


def _context_conditioned(section) -> bool:
  """True when a method of the section is conditioned on condition vectors (hyper condition='context',
  moe_lora router='condition')."""
  return any(p.get("condition") == "context" or p.get("router") == "condition" for p in _peft_parts(section))


def _check_task_count(section, n: int) -> None:
  for p in _peft_parts(section):
    conditioned = p.get("condition", "task") == "task" and str(p.get("method", "")).startswith("hyper") \
        or p.get("method") == "task_gated_adapter" or (p.get("method") == "moe_lora" and p.get("router") == "task")
    if conditioned and p.get("n_tasks") != n:
      raise ValueError(f"peft method {p.get('method')!r} has n_tasks={p.get('n_tasks')!r} but task.mixture has {n} "
                       f"tasks; set --config.peft.n_tasks={n} (configs/multitask.py sets it from the mixture)")


def multitask(config: ml_collections.ConfigDict) -> Workload:
  """Several classification tasks in one run (`task.mixture`, `data.mixture`): one model, one classifier whose
  outputs the tasks own as per-task heads (or share), batches mixing the tasks with their `task_ids`.

  Config (`task.` unless said): mixture, mixture_sampling (proportional | uniform | temperature), temperature,
  mixture_size_cap (T5's K; 0: none), mixture_heads (per_task | shared), mixture_window (examples per
  stratified window); eval.held_out_task / eval.context_k / eval.context_encoder (context-conditioned methods:
  below). Keys a config does not set take MIXTURE_DEFAULTS / CONTEXT_DEFAULTS.

  Conditioning: `task_ids` reach every PEFT method as ctx (hyper*, moe_lora router="task", task_gated_adapter:
  n_tasks must be the mixture's size). Named adapters called after the tasks (peft `name=<task name>`) get
  `adapter_ids` (one adapter per task). A context-conditioned method (hyper condition="context", moe_lora
  router="condition") gets `condition`: per task, the mean sentence embedding of eval.context_k of its training
  examples (`data.mixture.context_examples`, `models.sentence.SentenceEncoder`: eval.context_encoder, default
  all-MiniLM-L6-v2), fixed for the run. eval.held_out_task=NAME (a task not in the mixture; shared heads) is
  then evaluated at every evaluation with its condition computed the same way from k of its training
  examples, with no gradient step: `held_out/<task>/<metric>` beside the mixture's metrics.

  Metrics (`train.evaluate.combine_task_metrics`): `<task>/<metric>` per task, `average/<metric>` and
  `average` (mean of each task's first metric), which ranks checkpoints unless eval.metric says otherwise.
  """
  from lightft_jax import data, peft
  from lightft_jax.data import mixture as mx
  from lightft_jax.peft import named
  from lightft_jax.train.build import build_model, build_tokenizer
  from lightft_jax.train.evaluate import evaluate_tasks
  import numpy as np
  t = {**MIXTURE_DEFAULTS, **{k: config.task[k] for k in MIXTURE_DEFAULTS if k in config.task}}
  e = {**CONTEXT_DEFAULTS, **{k: config.eval[k] for k in CONTEXT_DEFAULTS if k in config.eval}}
  if config.task.options.to_dict():
    raise ValueError("task.options applies to a single task; give a mixture entry its options as (name, {options})")
  data_dir = config.task.data_dir or None
  mix = mx.get_mixture(config.task.mixture, heads=t["mixture_heads"], data_dir=data_dir)
  _check_task_count(config.peft, len(mix))
  offsets, sizes, head = mix.label_offsets, mix.label_sizes, mix.num_labels
  held = None
  if e["held_out_task"]:
    held = data.get_task(e["held_out_task"], **({"data_dir": data_dir} if data_dir else {}))
    if held.name in mix.names:
      raise ValueError(f"eval.held_out_task={held.name!r} is one of the mixture's tasks {list(mix.names)}")
    if not _context_conditioned(config.peft) or mix.heads != "shared":
      raise ValueError("eval.held_out_task evaluates an unseen task through its context: it needs a "
                       "context-conditioned PEFT method (hyper* condition='context' or moe_lora router='condition') "
                       "and task.mixture_heads='shared' (an unseen task has no head of its own)")
    if held.kind != mix.kind or held.num_labels > head:
      raise ValueError(f"held-out task {held.name!r} ({held.kind}, {held.num_labels} labels) does not fit the "
                       f"mixture's {mix.kind} classifier of {head} outputs")
    offsets, sizes = np.append(offsets, 0), np.append(sizes, held.num_labels)  # task id len(mix): the held-out task
  model = build_model(config.model, task=get_kind(mix.kind).head, num_labels=head, seed=config.seed)
  peft.apply(model, config.peft)
  tokenizer = build_tokenizer(config.model)
  family = config.task.model_family or model.cfg.arch
  if family != "encoder":
    raise ValueError(f"task mixtures train an encoder classifier; model family {family!r} is not supported yet")

  per_task: dict[str, np.ndarray] = {}
  names = named.adapter_names(model)
  if set(names) & set(mix.names):
    missing = [n for n in mix.names if n not in names]
    if missing:
      raise ValueError(f"named adapters {list(names)} cover some of the mixture's tasks but not {missing}: name one "
                       "adapter after every task (peft name=<task name>)")
    per_task["adapter_ids"] = np.asarray([names.index(n) for n in mix.names], np.int32)
  held_table: dict[str, np.ndarray] = {}
  if _context_conditioned(config.peft):
    k = e["context_k"] or 16
    from lightft_jax.models.sentence import SentenceEncoder
    encoder = SentenceEncoder.load(e["context_encoder"] or None)

    def condition(task) -> np.ndarray:
      return mx.context_condition(encoder, task, k, seed=config.seed, split=config.task.train_split,
                                  data_dir=data_dir)

    per_task["condition"] = np.stack([condition(task) for task in mix.tasks])
    if held is not None:
      held_table["condition"] = np.concatenate([per_task["condition"], condition(held)[None]])
  elif e["held_out_task"] or e["context_k"]:
    raise ValueError("eval.context_k / eval.held_out_task need a context-conditioned PEFT method")

  train_sizes = [len(task.open(config.task.train_split, data_dir)) for task in mix.tasks]
  weights = mx.mixture_weights(train_sizes, t["mixture_sampling"], t["temperature"], t["mixture_size_cap"])
  log.info("task mixture %s: train sizes %s, sampling %s (T=%s) -> weights %s", list(mix.names), train_sizes,
           t["mixture_sampling"], t["temperature"], np.round(weights, 4).tolist())
  batches = mx.make_mixture_loader(mix, config.task.train_split, tokenizer=tokenizer, batch_size=config.batch_size,
                                   max_length=config.model.max_length, weights=weights, seed=config.seed,
                                   window=t["mixture_window"], process_index=jax.process_index(),
                                   process_count=jax.process_count(), model_family=family, data_dir=data_dir,
                                   padding=config.task.padding, per_task=per_task)
  eval_rows = config.eval.batch_size or config.batch_size

  def task_batches(task, task_id, split, table):
    loader = data.make_loader(task, split, tokenizer=tokenizer, batch_size=eval_rows,
                              max_length=config.model.max_length, seed=config.seed, shuffle=False, num_epochs=1,
                              process_index=jax.process_index(), process_count=jax.process_count(),
                              model_family=family, data_dir=data_dir, drop_remainder=False,
                              padding=config.task.padding)
    return mx.TaggedBatches(loader, task_id, table)

  def run_eval(prog, params, frozen, rest, split, limit=0, report=False):
    kw = dict(local_rows=eval_rows // jax.process_count(), limit=limit, report=report, tokenizer=tokenizer)
    metrics = evaluate_tasks(prog, params, frozen, rest,
                             {task.name: (task, task_batches(task, i, split, per_task))
                              for i, task in enumerate(mix.tasks)}, **kw)
    if held is not None:
      unseen = evaluate_tasks(prog, params, frozen, rest,
                              {held.name: (held, task_batches(held, len(mix), split, held_table))},
                              prefix="held_out/", **kw)
      if "report" in unseen:
        metrics["report"] = "\n\n".join(filter(None, [metrics.get("report"), unseen.pop("report")]))
      metrics.update({k: v for k, v in unseen.items() if k.startswith(f"held_out/{held.name}/")})
    return metrics

  def finish(prog, params, frozen, rest, workdir) -> dict:
    return {"mixture": {"tasks": list(mix.names), "train_sizes": train_sizes,
                        "weights": [float(w) for w in weights], "sampling": t["mixture_sampling"],
                        "temperature": float(t["temperature"]), "heads": mix.heads, "classifier_outputs": head,
                        "label_offsets": [int(o) for o in mix.label_offsets],
                        "held_out_task": held.name if held is not None else None,
                        "context_k": (e["context_k"] or 16) if "condition" in per_task else None}}

  return Workload(model=model, batches=batches, name="+".join(mix.names), kind=mix.kind,
                  objective=label_space_objective(mix.kind, offsets, sizes), evaluate=run_eval, finish=finish,
                  steps_per_epoch=lambda: max(1, sum(train_sizes) // config.batch_size))
