"""Meta-learning across tasks: MetaICL-style k-shot meta-training, and first-order MAML / Reptile over a
parameter subset (PEFT parameters by default), each evaluated on held-out tasks.

A task gives token-level examples: `task.sample(rng, n) -> list[(input ids, answer id)]` and
`task.label_ids` (the answer choices). `TokenMappingTask` is a synthetic family (each task a random
mapping from input tokens to label tokens) for experiments and tests; any object with those two members
works. What trains is an nnx filter, by default `peft.trainable_filter(model)` (every Param when no PEFT
method is attached). Shapes: B sequences, T tokens.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from lightft_jax.icl.scoring import score_choices
from lightft_jax.models.transformer import Transformer


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


def _lm_batch(rows: list[tuple[list[int], int]], pad_id: int):
  """(context, answer) rows -> ids [B,T] (context + answer, right padded), mask [B,T], target position [B]."""
  t = max(len(c) + 1 for c, _ in rows)
  ids = np.full((len(rows), t), pad_id, np.int32)
  mask = np.zeros((len(rows), t), np.int32)
  pos = np.zeros(len(rows), np.int32)
  for r, (c, y) in enumerate(rows):
    ids[r, :len(c) + 1], mask[r, :len(c) + 1], pos[r] = list(c) + [y], 1, len(c) - 1
  return ids, mask, pos


def _answer_loss(model: Transformer, ids, mask, pos):
  """Mean cross-entropy of the answer token (at pos + 1) predicted from position pos."""
  logits = model(ids, mask)["logits"].astype(jnp.float32)
  rows = jnp.arange(ids.shape[0])
  logp = jax.nn.log_softmax(logits[rows, pos], -1)
  return -jnp.mean(logp[rows, ids[rows, pos + 1]])


def _filter(model, wrt):
  if wrt is not None:
    return wrt
  from lightft_jax import peft
  return peft.trainable_filter(model)


def meta_train_icl(model: Transformer, tasks: Sequence, *, k: int, steps: int, batch_size: int = 16,
                   lr: float = 1e-3, sep: int = 3, seed: int = 0, wrt=None) -> list[float]:
  """MetaICL: every step, B k-shot sequences, each from a random training task; loss on the query answer.

  Trains the Variables selected by `wrt` (default: the PEFT trainable filter). Returns per-step losses.
  """
  rng = np.random.default_rng(seed)
  opt = nnx.Optimizer(model, optax.adam(lr), wrt=_filter(model, wrt))

  @nnx.jit
  def step(model, opt, ids, mask, pos):
    loss, grads = nnx.value_and_grad(_answer_loss, argnums=nnx.DiffState(0, opt.wrt))(model, ids, mask, pos)
    opt.update(model, grads)
    return loss

  losses = []
  for _ in range(steps):
    rows = []
    for _ in range(batch_size):
      task = tasks[rng.integers(len(tasks))]
      *demos, query = task.sample(rng, k + 1)
      rows.append(kshot_sequence(demos, query, sep))
    losses.append(float(step(model, opt, *_lm_batch(rows, model.cfg.pad_token_id))))
  return losses


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


def _sgd_steps(graphdef, params, rest, batch, lr, n):
  """n plain SGD steps on the answer loss from `params`; returns the adapted params."""
  def loss(p):
    return _answer_loss(nnx.merge(graphdef, p, rest), *batch)
  for _ in range(n):
    params = jax.tree.map(lambda w, g: w - lr * g, params, jax.grad(loss)(params))
  return params


def meta_train_first_order(model: Transformer, tasks: Sequence, *, algorithm: str = "reptile", steps: int = 100,
                           tasks_per_step: int = 4, support: int = 8, query: int = 8, inner_steps: int = 3,
                           inner_lr: float = 0.1, outer_lr: float = 0.5, seed: int = 0, wrt=None) -> list[float]:
  """First-order MAML or Reptile over the Variables `wrt` selects (default: the PEFT trainable filter).

  Inner loop: `inner_steps` SGD steps on a task's support examples (zero-shot sequences x -> y).
  reptile: theta += outer_lr * mean_tasks(theta' - theta). fomaml: theta -= outer_lr * mean_tasks(grad of the
  query loss at theta'). Updates `model` in place; returns the mean post-adaptation query loss per step.
  """
  algorithms = ("reptile", "fomaml")
  if algorithm not in algorithms:
    raise ValueError(f"unknown first-order meta-learning algorithm {algorithm!r}; choose from {algorithms}")
  rng = np.random.default_rng(seed)
  graphdef, params, rest = nnx.split(model, _filter(model, wrt), ...)
  pad = model.cfg.pad_token_id

  @jax.jit
  def task_update(params, rest, sup, qry):
    adapted = _sgd_steps(graphdef, params, rest, sup, inner_lr, inner_steps)
    q_loss, q_grad = jax.value_and_grad(lambda p: _answer_loss(nnx.merge(graphdef, p, rest), *qry))(adapted)
    direction = jax.tree.map(lambda a, p: a - p, adapted, params) if algorithm == "reptile" else \
        jax.tree.map(lambda g: -g, q_grad)
    return direction, q_loss

  history = []
  for _ in range(steps):
    directions, q_losses = [], []
    for _ in range(tasks_per_step):
      task = tasks[rng.integers(len(tasks))]
      examples = task.sample(rng, support + query)
      sup, qry = _lm_batch(examples[:support], pad), _lm_batch(examples[support:], pad)
      d, q = task_update(params, rest, sup, qry)
      directions.append(d)
      q_losses.append(float(q))
    mean_dir = jax.tree.map(lambda *ds: sum(ds) / len(ds), *directions)
    params = jax.tree.map(lambda p, d: p + outer_lr * d, params, mean_dir)
    history.append(float(np.mean(q_losses)))
  nnx.update(model, params)
  return history


def evaluate_adaptation(model: Transformer, tasks: Sequence, *, support: int = 8, query: int = 32,
                        inner_steps: int = 3, inner_lr: float = 0.1, seed: int = 1, wrt=None) -> dict:
  """Few-step adaptation on held-out tasks: accuracy on each task's query examples before and after
  `inner_steps` SGD steps on its support examples (the model itself is left unchanged)."""
  rng = np.random.default_rng(seed)
  graphdef, params, rest = nnx.split(model, _filter(model, wrt), ...)
  pad = model.cfg.pad_token_id
  adapt = jax.jit(lambda p, r, b: _sgd_steps(graphdef, p, r, b, inner_lr, inner_steps))

  def accuracy(p, task, rows):
    m = nnx.merge(graphdef, p, rest)
    ll, _ = score_choices(m, [x for x, _ in rows], [[[y] for y in task.label_ids]] * len(rows), batch_size=16,
                          ctx_bucket=8)
    return float(np.mean(np.argmax(np.stack(ll), -1) == np.array([task.label_ids.index(y) for _, y in rows])))

  before, after = [], []
  for task in tasks:
    examples = task.sample(rng, support + query)
    rows = examples[support:]
    before.append(accuracy(params, task, rows))
    after.append(accuracy(adapt(params, rest, _lm_batch(examples[:support], pad)), task, rows))
  return {"acc_before": float(np.mean(before)), "acc_after": float(np.mean(after))}
