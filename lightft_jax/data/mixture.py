"""Multi-task mixtures: several tasks in one run, each example tagged with its task's index (`task_ids`).

A mixture is named by `task.mixture`: a sequence whose entries are a task name (`"rotten_tomatoes"`) or a
(name, options) pair (`("csv", {"path": ..., "name": "mine"})`, options as `data.get_task` takes them). An
entry's key in metrics and adapter names is the built task's `name`; two entries may not share one.

Sampling (`mixture_weights`): with n_i training examples in task i (min(n_i, size_cap) when size_cap > 0, T5's
examples-proportional mixing limit K),
  proportional   p_i = n_i / sum_j n_j
  uniform        p_i = 1 / N
  temperature    p_i = n_i^(1/T) / sum_j n_j^(1/T)       (T = 1: proportional; T -> inf: uniform; T5, HyperFormer)

The train stream (`make_mixture_loader`) is stratified: every window of W consecutive examples (W = `window`,
default 1000) holds c_i of task i, c = the largest-remainder rounding of W * p (each c_i >= 1), in an order
shuffled per window (numpy PCG64 seeded by (seed, window index)). Each task's examples come from its own
shuffled, endlessly repeated stream (reshuffled every epoch), each used once per pass, window by window. So the
realised proportions are p to within 1/W in every window, not only on average, and element k of the stream is a
pure function of k: the pipeline is a Grain `MapDataset` (`MixtureDataset`) whose iterator state is one index,
which is what the checkpoint stores (`Loader.get_state` / `set_state`) and a resume continues from.
(`grain.MapDataset.mix` interleaves in a fixed repeating pattern with proportions rounded to integers whose
smallest is 100; the window shuffle here adds a random order and exact per-window counts, and keeps the same
kind of state.)

Batches hold examples of several tasks: each task's examples are formatted by the task kind's own formatter
(`formats`), then re-padded to one length; `task_ids` int32 [b] is added, and any per-task table in `per_task`
(e.g. {"adapter_ids": int [N], "condition": float [N, C]}) adds its row for each example's task.

Label spaces (`Mixture.label_offsets`, `label_sizes`, `num_labels`): classification tasks only. heads="per_task":
task i owns output classes [offset_i, offset_i + n_i) of one classifier of sum_i n_i outputs (per-task heads
stored as one matrix); heads="shared": every task reads classes [0, n_i) of one classifier of max_i n_i outputs
(class c of one task is class c of another: use it when labels mean the same across tasks, or for a task never
trained on, e.g. a held-out task's context-conditioned evaluation). The train objective
(`train.workload.label_space_objective`) takes the softmax over the example's own classes only.
"""

from __future__ import annotations

import dataclasses
import functools
import sys
from typing import Any, Mapping, Sequence

import grain
import numpy as np

from lightft_jax.data import formats
from lightft_jax.data.pipeline import READ_OPTIONS, HostRows, Loader, _check
from lightft_jax.data.tasks import k_shot_indices
from lightft_jax.kinds import IGNORE_INDEX, get_kind

SAMPLINGS = ("proportional", "uniform", "temperature")
HEADS = ("per_task", "shared")
MIXTURE_KINDS = ("classification",)


# ----------------------------------------------------------------------------- what is mixed

def parse_entries(spec: Any) -> list[tuple[str, dict]]:
  """`task.mixture` -> [(task name, options)]. Entries: "name", (name, {options}), or {"name": ..., "options": ...};
  a single string may also hold "+"-separated names ("rotten_tomatoes+debate_party")."""
  if isinstance(spec, str):
    spec = [s for s in spec.split("+") if s.strip()]
  out = []
  for e in spec or ():
    if isinstance(e, str):
      out.append((e.strip(), {}))
    elif isinstance(e, Mapping):
      out.append((str(e["name"]), dict(e.get("options") or {})))
    elif isinstance(e, (tuple, list)) and len(e) == 2 and isinstance(e[0], str) and isinstance(e[1], Mapping):
      out.append((e[0], dict(e[1])))
    else:
      raise ValueError(f"task.mixture entry {e!r} is not a task name, a (name, options) pair or a "
                       "{'name': ..., 'options': {...}} dict")
  if len(out) < 1:
    raise ValueError("task.mixture names no task")
  return out


@dataclasses.dataclass(frozen=True)
class Mixture:
  """The tasks of a multi-task run, in task-id order, and how their labels share one classifier."""
  tasks: tuple
  heads: str = "per_task"

  @property
  def names(self) -> tuple[str, ...]:
    return tuple(t.name for t in self.tasks)

  def __len__(self) -> int:
    return len(self.tasks)

  @property
  def kind(self) -> str:
    return self.tasks[0].kind

  @property
  def label_sizes(self) -> np.ndarray:
    return np.asarray([t.num_labels for t in self.tasks], np.int32)

  @property
  def label_offsets(self) -> np.ndarray:
    if self.heads == "shared":
      return np.zeros(len(self), np.int32)
    return np.concatenate([[0], np.cumsum(self.label_sizes)[:-1]]).astype(np.int32)

  @property
  def num_labels(self) -> int:
    """Outputs of the shared classifier: sum of the tasks' label counts (per_task) or the largest (shared)."""
    return int(self.label_sizes.sum() if self.heads == "per_task" else self.label_sizes.max())


def get_mixture(spec: Any, *, heads: str = "per_task", data_dir: str | None = None) -> Mixture:
  """The tasks `spec` (`parse_entries`) names, built with `data.get_task`; all must be classification tasks
  (one classifier serves them: see the module docstring) with distinct names."""
  from lightft_jax.data import tasks as registry
  if heads not in HEADS:
    raise ValueError(f"task.mixture_heads must be one of {HEADS}, got {heads!r}")
  tasks = []
  for name, options in parse_entries(spec):
    if data_dir and "data_dir" not in options and name not in ("jsonl", "csv"):
      options = {**options, "data_dir": data_dir}
    if name not in registry.REGISTRY:
      registry.get_task(name)  # raises, listing the registered tasks
    tasks.append(registry.REGISTRY[name](**options))  # (options may hold `name=`, as jsonl / csv tasks take)
  kinds = {t.name: t.kind for t in tasks}
  if any(k not in MIXTURE_KINDS for k in kinds.values()):
    raise ValueError(f"a task mixture trains one classification head; these tasks have kinds {kinds} (only "
                     f"{MIXTURE_KINDS} can be mixed for now: leave regression tasks such as stsb out)")
  names = [t.name for t in tasks]
  if len(set(names)) != len(names):
    raise ValueError(f"task.mixture names a task twice: {names}; give repeated tasks their own name= option")
  return Mixture(tuple(tasks), heads)


def mixture_weights(sizes: Sequence[int], sampling: str = "proportional", temperature: float = 1.0,
                    size_cap: int = 0) -> np.ndarray:
  """Sampling probabilities p [N] of tasks with `sizes` training examples (module docstring)."""
  n = np.asarray(sizes, np.float64)
  if n.ndim != 1 or not len(n) or np.any(n <= 0):
    raise ValueError(f"every task of a mixture needs training examples; sizes {list(sizes)}")
  if size_cap:
    n = np.minimum(n, size_cap)
  if sampling == "proportional":
    w = n
  elif sampling == "uniform":
    w = np.ones_like(n)
  elif sampling == "temperature":
    if not temperature > 0:
      raise ValueError(f"task.temperature must be > 0, got {temperature}")
    w = n ** (1.0 / temperature)
  else:
    raise ValueError(f"task.mixture_sampling must be one of {SAMPLINGS}, got {sampling!r}")
  return w / w.sum()


def window_counts(weights: Sequence[float], window: int) -> np.ndarray:
  """Examples of each task in a window of `window`: largest-remainder rounding of window * p, each >= 1."""
  p = np.asarray(weights, np.float64)
  if window < len(p):
    raise ValueError(f"a mixture window of {window} examples cannot hold one of each of {len(p)} tasks")
  raw = p / p.sum() * window
  counts = np.maximum(np.floor(raw).astype(np.int64), 1)
  while counts.sum() < window:  # the largest remainders get the rest
    counts[np.argmax(raw - counts)] += 1
  while counts.sum() > window:  # only when the minimum of 1 overfilled: take from the largest
    counts[np.argmax(counts - raw)] -= 1
  return counts


# ----------------------------------------------------------------------------- the stream

class MixtureDataset(grain.MapDataset):
  """Element k -> (task index i, parents[i][j]): stratified windows of `window` elements (module docstring).

  parents: one MapDataset per task, indexable at any j >= 0 (repeated). Length: sys.maxsize (endless).
  """

  def __init__(self, parents: Sequence[grain.MapDataset], weights: Sequence[float], *, window: int = 1000,
               seed: int = 0):
    super().__init__(list(parents))
    self._counts = window_counts(weights, window)
    self._window, self._seed = int(window), int(seed)
    self._owner = np.repeat(np.arange(len(self._counts)), self._counts)  # slot -> task
    self._first = np.concatenate([[0], np.cumsum(self._counts)[:-1]])  # first slot of each task
    self._perm_cache: dict[int, np.ndarray] = {}

  @property
  def counts(self) -> np.ndarray:
    return self._counts

  def __len__(self) -> int:
    return sys.maxsize

  def _perm(self, w: int) -> np.ndarray:
    perm = self._perm_cache.get(w)
    if perm is None:
      if len(self._perm_cache) > 8:
        self._perm_cache.clear()
      perm = self._perm_cache[w] = np.random.default_rng([self._seed, w]).permutation(self._window)
    return perm

  def source_of(self, k: int) -> tuple[int, int]:
    """(task index, index in that task's stream) of element k."""
    w, j = divmod(int(k), self._window)
    slot = int(self._perm(w)[j])
    i = int(self._owner[slot])
    return i, w * int(self._counts[i]) + slot - int(self._first[i])

  def __getitem__(self, k):
    if isinstance(k, slice):
      return self.slice(k)
    i, j = self.source_of(k)
    return i, self._parents[i][j]

  def __str__(self) -> str:
    return f"MixtureDataset(counts per {self._window}={self._counts.tolist()}, seed={self._seed})"


def format_mixed(tasks: Sequence, rows: Sequence[tuple[int, dict]], *, tok, max_length: int, padding: str,
                 model_family: str, per_task: Mapping[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
  """[(task index, example)] -> one batch: each task's rows through its kind's formatter, re-padded to the
  longest, in the original row order; plus `task_ids` [b] and a row of every `per_task` table per example."""
  ids = np.asarray([i for i, _ in rows], np.int32)
  parts, where = [], []
  for i in sorted(set(ids.tolist())):
    pos = np.flatnonzero(ids == i)
    fmt = get_kind(tasks[i].kind).formatter(model_family)
    batch = fmt(tasks[i], [rows[p][1] for p in pos], tok=tok, max_length=max_length, padding=padding)
    batch.pop(formats.HOST, None)  # host rows (QA / text-to-text) do not mix; classification has none
    parts.append(batch)
    where.append(pos)
  keys = sorted({k for b in parts for k in b})
  out = {}
  for k in keys:
    ref = next(b[k] for b in parts if k in b)
    width = max(b[k].shape[1] for b in parts if k in b) if ref.ndim > 1 else None
    fill = tok.pad_token_id if k == "input_ids" else IGNORE_INDEX if k == "labels" and ref.ndim > 1 else 0
    arr = np.full((len(rows),) + ((width,) + ref.shape[2:] if width else ref.shape[1:]), fill, ref.dtype)
    for b, pos in zip(parts, where):
      if k in b:
        if width:
          arr[pos, :b[k].shape[1]] = b[k]
        else:
          arr[pos] = b[k]
    out[k] = arr
  out["task_ids"] = ids
  for k, table in (per_task or {}).items():
    out[k] = np.asarray(table)[ids]
  return out


def task_stream(task, split: str, seed: int, data_dir: str | None, shuffle: bool = True) -> grain.MapDataset:
  """One task's examples, shuffled (reshuffled every epoch) and repeated forever."""
  ds = grain.MapDataset.source(task.open(split, data_dir))
  if shuffle:
    ds = ds.shuffle(seed=seed)
  return ds.repeat(None)


def make_mixture_loader(mixture: Mixture, split: str, *, tokenizer, batch_size: int, max_length: int,
                        weights: Sequence[float], seed: int = 0, window: int = 1000, process_index: int = 0,
                        process_count: int = 1, model_family: str = "encoder", data_dir: str | None = None,
                        padding: str = "max_length", per_task: Mapping[str, np.ndarray] | None = None) -> Loader:
  """Endless training batches of the mixture (`MixtureDataset` -> this host's rows -> `format_mixed`).
  Task i's stream is shuffled with seed + i."""
  _check(batch_size, process_index, process_count, max_length)
  if padding not in formats.PADDINGS:
    raise ValueError(f"padding must be one of {formats.PADDINGS}, got {padding!r}")
  b = batch_size // process_count
  parents = [task_stream(t, split, seed + i, data_dir) for i, t in enumerate(mixture.tasks)]
  ds = MixtureDataset(parents, weights, window=window, seed=seed)
  ds = HostRows(ds, batch_size, process_index, process_count)
  ds = ds.batch(b, drop_remainder=True, batch_fn=functools.partial(
      format_mixed, mixture.tasks, tok=tokenizer, max_length=max_length, padding=padding,
      model_family=model_family, per_task=per_task))
  info = dict(task="+".join(mixture.names), split=split, batch_size=batch_size, per_process=b,
              model_family=model_family, weights=[float(w) for w in weights])
  return Loader(ds.to_iter_dataset(READ_OPTIONS), info)


class TaggedBatches:
  """A task's batches (a `data.Loader`) with `task_ids` = `task_id` and the task's row of each `per_task`
  table added to every batch; `host`, `get_state` and `set_state` pass through."""

  def __init__(self, loader: Loader, task_id: int, per_task: Mapping[str, np.ndarray] | None = None):
    self.loader, self.task_id, self.per_task = loader, int(task_id), dict(per_task or {})

  def __iter__(self) -> "TaggedBatches":
    return self

  def __next__(self) -> dict[str, np.ndarray]:
    batch = next(self.loader)
    n = len(next(iter(batch.values())))
    batch["task_ids"] = np.full((n,), self.task_id, np.int32)
    for k, table in self.per_task.items():
      row = np.asarray(table)[self.task_id]
      batch[k] = np.broadcast_to(row, (n,) + row.shape).copy()
    return batch

  @property
  def host(self):
    return self.loader.host

  def get_state(self) -> dict:
    return self.loader.get_state()

  def set_state(self, state: dict) -> None:
    self.loader.set_state(state)


def context_examples(task, k: int, *, seed: int = 0, split: str = "train", data_dir: str | None = None) -> list[str]:
  """The texts of k examples of `task`'s `split`: what a context-conditioned hypernetwork reads to condition on
  the task. They are the k examples `data.tasks.k_shot_indices` draws for `seed`, so a k-shot baseline
  (`task.options.train_k` / `train_k_seed`) and the few-shot harness's demonstrations for (seed, k) use the same
  examples. A pair's two texts are joined by " | "."""
  source = task.open(split, data_dir)
  if k <= 0 or len(source) < k:
    raise ValueError(f"context of k={k} examples from {task.name!r} {split} ({len(source)} examples): need 0 < k <= "
                     "the split's size")
  return [" | ".join(task.encoder_inputs(source[i])) for i in k_shot_indices(len(source), k, seed)]


def context_condition(encode, task, k: int, *, seed: int = 0, split: str = "train",
                      data_dir: str | None = None) -> np.ndarray:
  """A task's condition vector float32 [C]: the mean of `encode` (texts -> [k, C], e.g.
  `models.sentence.SentenceEncoder`) over `context_examples(task, k)`. No gradient, no training: an unseen task
  gets its condition from k of its examples alone."""
  return np.asarray(encode(context_examples(task, k, seed=seed, split=split, data_dir=data_dir)),
                    np.float32).mean(0)
