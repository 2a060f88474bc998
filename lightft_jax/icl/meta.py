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
      demos, (query,) = _split_sample(task, rng, k, 1)
      ctx, y = kshot_sequence(demos, query, sep)
      contexts.append(ctx)
      gold.append(task.label_ids.index(y))
    ll, _ = score_choices(model, contexts, [[[y] for y in task.label_ids]] * len(contexts), batch_size=16,
                          ctx_bucket=8)
    correct += int(np.sum(np.argmax(np.stack(ll), -1) == np.array(gold)))
    total += len(gold)
  return correct / total


def _split_sample(task, rng: np.random.Generator, n_support: int, n_query: int):
  """(support examples, query examples) of a held-out task: from its own support pool when it has one
  (`TextTask.sample_split`), else n_support + n_query draws of `sample`."""
  if getattr(task, "support", None) is not None:
    return task.sample_split(rng, n_support, n_query)
  examples = task.sample(rng, n_support + n_query)
  return examples[:n_support], examples[n_support:]


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
    sup, rows = _split_sample(task, rng, support, query)
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


# Real labelled text tasks as meta-learning tasks: template and one-token answers (SmolLM2's tokenizer) per task.
TEXT_TASKS = {
    "rotten_tomatoes": ("Review: {text}\nSentiment:", ("negative", "positive")),
    "convention_party": ("Speech: {text}\nParty:", ("democrat", "republican")),
    "debate_party": ("Statement: {text}\nSpeaker:", ("Democrat", "Republican", "Host")),
}


@dataclasses.dataclass
class TextTask:
  """A labelled text task of `lightft_jax.data` as meta-learning examples: each example "template(text)" (the
  text cut to `max_words` words) as token ids, and its label's verbalizer, one token (`label_ids`).
  `support`: where demonstrations and adaptation examples of a held-out task come from (its train split) while
  the queries come from `examples` (validation or test); None: from `examples` too."""

  name: str
  examples: list[tuple[list[int], int]]
  label_ids: list[int]
  support: list[tuple[list[int], int]] | None = None

  def sample(self, rng: np.random.Generator, n: int, pool=None) -> list[tuple[list[int], int]]:
    pool = self.examples if pool is None else pool
    return [pool[i] for i in rng.choice(len(pool), n, replace=len(pool) < n)]

  def sample_split(self, rng: np.random.Generator, n_support: int, n_query: int):
    """(n_support examples of `support`, n_query of `examples`)."""
    return self.sample(rng, n_support, self.support), self.sample(rng, n_query)


def text_task(name: str, split: str, tokenizer, *, max_words: int = 30, limit: int | None = None,
              data_dir: str | None = None, support_split: str | None = None) -> TextTask:
  """`TextTask` of task `name` (one of TEXT_TASKS) on `split` (and `support_split` as its support), tokenized as
  the ICL harness encodes prompts."""
  if name not in TEXT_TASKS:
    raise ValueError(f"no meta-learning template for task {name!r}; known: {sorted(TEXT_TASKS)}")
  from lightft_jax import data
  from lightft_jax.icl.fewshot import PromptEncoder
  template, words = TEXT_TASKS[name]
  enc = PromptEncoder(tokenizer)
  label_ids = []
  for w in words:
    ids = enc.answer(" " + w)  # after the template's ":" as the ICL harness puts it (label_delimiter " ")
    if len(ids) != 1:
      raise ValueError(f"the verbalizer {w!r} of task {name!r} is {len(ids)} tokens with this tokenizer; "
                       f"meta-learning scores one-token answers")
    label_ids.append(ids[0])
  task = data.get_task(name, **({"data_dir": data_dir} if data_dir else {}))
  encode = lambda rows: [(enc.context(template.format(text=" ".join(r["text"].split()[:max_words]))),
                          label_ids[int(r["label"])]) for r in rows]
  support = encode(task.examples(support_split, limit=limit)) if support_split else None
  return TextTask(name, encode(task.examples(split, limit=limit)), label_ids, support)


def make_tasks(family: str, seeds: Sequence[int] = (), *, names: Sequence[str] = (), split: str = "train",
               tokenizer=None, max_words: int = 30, limit: int | None = None, support_split: str | None = None,
               data_dir: str | None = None) -> list:
  """The tasks of a family: "token_mapping" (`TokenMappingTask` per seed) or "text" (`TextTask` per name, on
  `split` with `support_split` as support, with `tokenizer`)."""
  if family == "token_mapping":
    return [TokenMappingTask(int(s)) for s in seeds]
  if family == "text":
    if not names:
      raise ValueError(f"meta-learning family 'text' needs task names; known: {sorted(TEXT_TASKS)}")
    return [text_task(n, split, tokenizer, max_words=max_words, limit=limit, support_split=support_split,
                      data_dir=data_dir) for n in names]
  raise ValueError(f"unknown meta-learning task family {family!r}; known: ['text', 'token_mapping']")


def _lm_model(config):
  from lightft_jax import peft
  from lightft_jax.train.build import build_model
  model = build_model(config.model, task="lm", seed=config.seed)
  peft.apply(model, config.peft)
  return model


def _tokenizer(config):
  """The model's tokenizer for the text family (None for token_mapping); built once per workload."""
  if config.meta.family != "text":
    return None
  from lightft_jax.train.build import build_tokenizer
  return build_tokenizer(config.model)


def _names(value: str) -> list[str]:
  return [n for n in value.split(",") if n]


def _train_tasks(config, tokenizer) -> list:
  m = config.meta
  if m.family == "text":
    return make_tasks("text", names=_names(m.train_names), split="train", tokenizer=tokenizer,
                      max_words=m.max_words)
  return make_tasks(m.family, range(m.train_tasks))


def _held_out_tasks(config, split: str, tokenizer) -> list:
  """Held-out tasks: "text": `meta.held_out_names` on `split` (validation during training, test at the end);
  token_mapping: `meta.held_out_tasks` seeds from `meta.held_out_seed` (one set for every split)."""
  m = config.meta
  if m.family == "text":
    return make_tasks("text", names=_names(m.held_out_names), split=split, tokenizer=tokenizer,
                      max_words=m.max_words, support_split="train")
  return make_tasks(m.family, range(m.held_out_seed, m.held_out_seed + m.held_out_tasks))


def _workload(config, model, stream, tokenizer, gradient=None):
  from lightft_jax.train.workload import Workload
  m = config.meta
  held_out_by_split = {}  # tokenized once per split, not at every evaluation

  def evaluate(prog, params, frozen, rest, split, limit=0, report=False):
    if split not in held_out_by_split:
      held_out_by_split[split] = _held_out_tasks(config, split, tokenizer)
    held_out = held_out_by_split[split]
    model = prog.model(params, frozen, rest, train=False)
    # The run's seed picks the evaluation draws (queries, demonstrations, support examples): runs of one seed
    # share them, so rows compare on the same draws, and the spread over seeds includes the draw.
    seed = config.seed + 1
    out = {"icl_accuracy": evaluate_icl(model, held_out, k=m.k, queries_per_task=m.queries_per_task, sep=m.sep,
                                        seed=seed)}
    if config.train.objective != "metaicl":
      from lightft_jax import peft
      out.update(evaluate_adaptation(model, held_out, support=m.support, query=m.queries_per_task, seed=seed,
                                     inner_steps=m.inner_steps, inner_lr=m.inner_lr,
                                     wrt=peft.trainable_filter(model), length=config.model.max_length))
    return {**out, "examples": len(held_out) * m.queries_per_task}

  name = m.train_names if m.family == "text" else f"{m.family}[{m.train_tasks} tasks]"
  return Workload(model=model, batches=stream, name=name, kind="lm", gradient=gradient, evaluate=evaluate)


def metaicl_workload(config):
  """`train.objective="metaicl"`: k-shot sequences from the training tasks, the answer loss; evaluation:
  k-shot accuracy on held-out tasks (configs/meta_learning.py has the keys)."""
  model, m, tokenizer = _lm_model(config), config.meta, _tokenizer(config)
  stream = TaskStream(_train_tasks(config, tokenizer), mode="metaicl", batch_size=config.batch_size,
                      length=config.model.max_length, pad_id=model.cfg.pad_token_id, seed=config.seed, k=m.k,
                      sep=m.sep)
  return _workload(config, model, stream, tokenizer)


def first_order_workload(config):
  """`train.objective` "reptile" / "fomaml": `batch_size` tasks per step, the first-order meta-gradient
  (`first_order_gradient`; the outer learning rate is `optimizer.lr`, with `optimizer.name="sgd"` for the
  papers' plain outer step); evaluation: held-out accuracy before and after adaptation, and k-shot."""
  model, m, tokenizer = _lm_model(config), config.meta, _tokenizer(config)
  stream = TaskStream(_train_tasks(config, tokenizer), mode="first_order",
                      batch_size=config.batch_size, length=config.model.max_length,
                      pad_id=model.cfg.pad_token_id, seed=config.seed, support=m.support, query=m.query)
  return _workload(config, model, stream, tokenizer,
                   first_order_gradient(config.train.objective, m.inner_steps, m.inner_lr))
