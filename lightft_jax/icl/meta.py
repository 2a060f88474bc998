"""Meta-learning across tasks: MetaICL-style k-shot meta-training, and first-order MAML / Reptile over a
parameter subset (PEFT parameters by default), each evaluated on held-out tasks.

Training runs through the trainer: `train.objective` "metaicl" (the lm answer loss on k-shot sequences),
"reptile" or "fomaml" (`first_order_gradient` replaces the gradient); `TaskStream` makes the batches and
configs/meta_learning.py the config.

A task gives token-level examples: `task.sample(rng, n) -> list[(input ids, answer id)]` and
`task.label_ids` (the answer choices). `TokenMappingTask` is a synthetic family (each task a random
mapping from input tokens to label tokens) for experiments and tests; any object with those two members
works. What trains is an nnx filter, by default `peft.trainable_filter(model)` (every Param when no PEFT
method is attached). Shapes: B sequences, T tokens.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from lightft_jax.icl.scoring import score_choices
from lightft_jax.kinds import IGNORE_INDEX
from lightft_jax.models.transformer import Transformer
from lightft_jax.train.steps import GradientEstimator, kind_objective


@dataclasses.dataclass(frozen=True)
class TokenMappingTask:
  """Inputs: `input_len` tokens from [first_input, first_input + num_inputs); answer: label_ids[f(first token)]
  for a random f fixed by `seed`."""

  seed: int
  num_inputs: int = 16
  num_labels: int = 2
  input_len: int = 2
  first_input: int = 10
  first_label: int = 4

  @property
  def label_ids(self) -> list[int]:
    return list(range(self.first_label, self.first_label + self.num_labels))

  def sample(self, rng: np.random.Generator, n: int) -> list[tuple[list[int], int]]:
    mapping = np.random.default_rng(self.seed).integers(0, self.num_labels, self.num_inputs)
    xs = rng.integers(0, self.num_inputs, (n, self.input_len))
    return [([int(t) + self.first_input for t in x], self.label_ids[mapping[x[0]]]) for x in xs]


def kshot_sequence(demos: Sequence[tuple[list[int], int]], query: tuple[list[int], int], sep: int
                   ) -> tuple[list[int], int]:
  """x_1 y_1 sep ... x_k y_k sep x_q -> (ids without y_q, y_q)."""
  ids = []
  for x, y in demos:
    ids += list(x) + [y, sep]
  return ids + list(query[0]), query[1]


def lm_rows(rows: Sequence[tuple[list[int], int]], length: int, pad_id: int) -> dict[str, np.ndarray]:
  """(context, answer) rows -> an "lm" batch of `length` tokens: input_ids = context + answer (right padded),
  attention_mask, and labels that are -100 except the answer, at the position that predicts it (the
  `lightft_jax.data` convention: labels[t] is the target of logits[t]). The lm token cross-entropy of this
  batch is the mean answer loss."""
  ids = np.full((len(rows), length), pad_id, np.int32)
  mask = np.zeros((len(rows), length), np.int32)
  labels = np.full((len(rows), length), IGNORE_INDEX, np.int32)
  for r, (c, y) in enumerate(rows):
    if len(c) + 1 > length:
      raise ValueError(f"a meta-learning sequence has {len(c) + 1} tokens, more than model.max_length={length}")
    ids[r, :len(c) + 1], mask[r, :len(c) + 1], labels[r, len(c) - 1] = list(c) + [y], 1, y
  return {"input_ids": ids, "attention_mask": mask, "labels": labels}


_answer_loss = kind_objective("lm")  # (model, lm_rows batch, train) -> (mean answer cross-entropy, aux)
ALGORITHMS = ("reptile", "fomaml")


def _filter(model, wrt):
  if wrt is not None:
    return wrt
  from lightft_jax import peft
  return peft.trainable_filter(model)


def evaluate_icl(model: Transformer, tasks: Sequence, *, k: int, queries_per_task: int = 16, sep: int = 3,
                 seed: int = 1) -> float:
  """Mean k-shot accuracy over `tasks`: the label with the highest log-likelihood after the k-shot context."""
  rng = np.random.default_rng(seed)
  correct, total = 0, 0
  for task in tasks:
    contexts, gold = [], []
    for _ in range(queries_per_task):
      *demos, query = task.sample(rng, k + 1)
      ctx, y = kshot_sequence(demos, query, sep)
      contexts.append(ctx)
      gold.append(task.label_ids.index(y))
    ll, _ = score_choices(model, contexts, [[[y] for y in task.label_ids]] * len(contexts), batch_size=16,
                          ctx_bucket=8)
    correct += int(np.sum(np.argmax(np.stack(ll), -1) == np.array(gold)))
    total += len(gold)
  return correct / total


def _sgd_steps(loss_of: Callable, params, batch, lr: float, n: int):
  """n plain SGD steps of `loss_of(params, batch)` from `params`; returns the adapted params."""
  for _ in range(n):
    params = jax.tree.map(lambda w, g: w - lr * g, params, jax.grad(loss_of)(params, batch))
  return params


def first_order_gradient(algorithm: str, inner_steps: int, inner_lr: float) -> GradientEstimator:
  """The trainer's gradient for first-order meta-learning (`train.steps.GradientEstimator`).

  The batch holds, per task (leading axis), `support.*` and `query.*` rows. For each task: `inner_steps` SGD
  steps at `inner_lr` on its support loss from the current parameters theta -> theta'. reptile: the
  meta-gradient is mean_tasks(theta - theta'), so plain SGD at the outer learning rate gives
  theta += outer_lr * mean_tasks(theta' - theta); fomaml: mean_tasks(gradient of the query loss at theta').
  The loss reported is the mean post-adaptation query loss.
  """
  if algorithm not in ALGORITHMS:
    raise ValueError(f"unknown first-order meta-learning algorithm {algorithm!r}; choose from {ALGORITHMS}")

  def gradient(loss_of, params, batch, rng):
    loss = lambda p, b: loss_of(p, b, rng)

    def per_task(sup, qry):
      adapted = _sgd_steps(loss, params, sup, inner_lr, inner_steps)
      q_loss, q_grad = jax.value_and_grad(loss)(adapted, qry)
      meta = jax.tree.map(jnp.subtract, params, adapted) if algorithm == "reptile" else q_grad
      return q_loss, meta

    part = lambda name: {k.split(".", 1)[1]: v for k, v in batch.items() if k.startswith(name + ".")}
    q_losses, metas = jax.vmap(per_task)(part("support"), part("query"))
    return jnp.mean(q_losses), jax.tree.map(lambda g: jnp.mean(g, 0), metas)

  return gradient


def evaluate_adaptation(model: Transformer, tasks: Sequence, *, support: int = 8, query: int = 32,
                        inner_steps: int = 3, inner_lr: float = 0.1, seed: int = 1, wrt=None,
                        length: int | None = None) -> dict:
  """Few-step adaptation on held-out tasks: accuracy on each task's query examples before and after
  `inner_steps` SGD steps on its support examples (the model itself is left unchanged). `length`: the
  padded support length (default: the longest support sequence)."""
  rng = np.random.default_rng(seed)
  graphdef, params, rest = nnx.split(model, _filter(model, wrt), ...)
  pad = model.cfg.pad_token_id
  loss = lambda p, b: _answer_loss(nnx.merge(graphdef, p, rest), b, False)[0]
  adapt = jax.jit(lambda p, b: _sgd_steps(loss, p, b, inner_lr, inner_steps))

  def accuracy(p, task, rows):
    m = nnx.merge(graphdef, p, rest)
    ll, _ = score_choices(m, [x for x, _ in rows], [[[y] for y in task.label_ids]] * len(rows), batch_size=16,
                          ctx_bucket=8)
    return float(np.mean(np.argmax(np.stack(ll), -1) == np.array([task.label_ids.index(y) for _, y in rows])))

  before, after = [], []
  for task in tasks:
    examples = task.sample(rng, support + query)
    sup, rows = examples[:support], examples[support:]
    before.append(accuracy(params, task, rows))
    n = length or max(len(x) + 1 for x, _ in sup)
    after.append(accuracy(adapt(params, lm_rows(sup, n, pad)), task, rows))
  return {"acc_before": float(np.mean(before)), "acc_after": float(np.mean(after))}


class TaskStream:
  """Endless meta-training batches over `tasks`; step i draws from `default_rng([seed, i])`, so the state is
  the step and a resumed run draws the same batches.

  mode "metaicl": `batch_size` k-shot sequences, each from a random task -> lm_rows.
  mode "first_order": `batch_size` random tasks, each `support` + `query` zero-shot examples ->
  {"support.<key>": [tasks, support, T], "query.<key>": [tasks, query, T]}.
  """

  def __init__(self, tasks: Sequence, *, mode: str, batch_size: int, length: int, pad_id: int, seed: int = 0,
               k: int = 4, sep: int = 3, support: int = 8, query: int = 8):
    self.tasks, self.mode, self.batch_size, self.length, self.pad_id = tasks, mode, batch_size, length, pad_id
    self.seed, self.k, self.sep, self.support, self.query, self.step = seed, k, sep, support, query, 0

  def __iter__(self):
    return self

  def __next__(self) -> dict[str, np.ndarray]:
    rng = np.random.default_rng([self.seed, self.step])
    self.step += 1
    if self.mode == "metaicl":
      rows = []
      for _ in range(self.batch_size):
        *demos, query = self.tasks[rng.integers(len(self.tasks))].sample(rng, self.k + 1)
        rows.append(kshot_sequence(demos, query, self.sep))
      return lm_rows(rows, self.length, self.pad_id)
    parts = {"support": [], "query": []}
    for _ in range(self.batch_size):
      examples = self.tasks[rng.integers(len(self.tasks))].sample(rng, self.support + self.query)
      parts["support"].append(lm_rows(examples[:self.support], self.length, self.pad_id))
      parts["query"].append(lm_rows(examples[self.support:], self.length, self.pad_id))
    return {f"{name}.{key}": np.stack([r[key] for r in rows]) for name, rows in parts.items() for key in rows[0]}

  def get_state(self) -> dict:
    return {"step": self.step}

  def set_state(self, state: dict) -> None:
    self.step = int(state["step"])


def make_tasks(family: str, seeds: Sequence[int]) -> list:
  """The tasks of a task family: "token_mapping" (`TokenMappingTask` per seed)."""
  if family != "token_mapping":
    raise ValueError(f"unknown meta-learning task family {family!r}; known: ['token_mapping']")
  return [TokenMappingTask(int(s)) for s in seeds]


def _lm_model(config):
  from lightft_jax import peft
  from lightft_jax.models import get_preset
  model = Transformer(get_preset(config.model.name, **dict(config.model.overrides)), task="lm",
                      rngs=nnx.Rngs(config.seed))
  peft.apply(model, config.peft)
  return model


def _workload(config, model, stream, gradient=None):
  from lightft_jax.train.workload import Workload
  m = config.meta
  held_out = make_tasks(m.family, range(m.held_out_seed, m.held_out_seed + m.held_out_tasks))

  def evaluate(prog, params, frozen, rest, split, limit=0, report=False):
    model = prog.model(params, frozen, rest, train=False)
    out = {"icl_accuracy": evaluate_icl(model, held_out, k=m.k, queries_per_task=m.queries_per_task, sep=m.sep)}
    if config.train.objective != "metaicl":
      from lightft_jax import peft
      out.update(evaluate_adaptation(model, held_out, support=m.support, query=m.queries_per_task,
                                     inner_steps=m.inner_steps, inner_lr=m.inner_lr,
                                     wrt=peft.trainable_filter(model), length=config.model.max_length))
    return {**out, "examples": len(held_out) * m.queries_per_task}

  return Workload(model=model, batches=stream, name=f"{m.family}[{m.train_tasks} tasks]", kind="lm",
                  gradient=gradient, evaluate=evaluate)


def metaicl_workload(config):
  """`train.objective="metaicl"`: k-shot sequences from the training tasks, the answer loss; evaluation:
  k-shot accuracy on held-out tasks (configs/meta_learning.py has the keys)."""
  model, m = _lm_model(config), config.meta
  stream = TaskStream(make_tasks(m.family, range(m.train_tasks)), mode="metaicl", batch_size=config.batch_size,
                      length=config.model.max_length, pad_id=model.cfg.pad_token_id, seed=config.seed, k=m.k,
                      sep=m.sep)
  return _workload(config, model, stream)


def first_order_workload(config):
  """`train.objective` "reptile" / "fomaml": `batch_size` tasks per step, the first-order meta-gradient
  (`first_order_gradient`; the outer learning rate is `optimizer.lr`, with `optimizer.name="sgd"` for the
  papers' plain outer step); evaluation: held-out accuracy before and after adaptation, and k-shot."""
  model, m = _lm_model(config), config.meta
  stream = TaskStream(make_tasks(m.family, range(m.train_tasks)), mode="first_order",
                      batch_size=config.batch_size, length=config.model.max_length,
                      pad_id=model.cfg.pad_token_id, seed=config.seed, support=m.support, query=m.query)
  return _workload(config, model, stream, first_order_gradient(config.train.objective, m.inner_steps, m.inner_lr))
