"""Grain input pipelines: deterministic given a seed, checkpointable, one disjoint slice per host.

The task kind (`lightft_jax.kinds`) says how examples become rows: its formatter for the model family, or,
for packed kinds (LM), whole documents packed into rows.

Non-LM tasks: source -> shuffle(seed) -> repeat(num_epochs, reshuffled each epoch) -> this host's rows of
every global batch -> batch + tokenize. Host p of P gets rows [p*b, (p+1)*b) of each global batch of
B = b*P rows, and reads only those records. LM tasks: this host's documents (every P-th) -> shuffle ->
repeat -> tokenize -> first-fit packing into rows of max_length -> batch.
"""

from __future__ import annotations

import functools
from typing import Any

import grain
import numpy as np

from lightft_jax.data import formats
from lightft_jax.kinds import get_kind

# Small read-ahead: a couple of batches prepared in the background, not hundreds (2-core machines).
READ_OPTIONS = grain.ReadOptions(num_threads=2, prefetch_buffer_size=2)


class HostRows(grain.MapDataset):
  """This host's rows of every global batch: element i -> parent[(i // b) * B + p * b + i % b], b = B / P.

  With keep_remainder, a last partial global batch of r rows gives host p its rows [p*b, min((p+1)*b, r)).
  """

  def __init__(self, parent: grain.MapDataset, global_batch: int, process_index: int, process_count: int,
               keep_remainder: bool = False):
    super().__init__(parent)
    self._B, self._b, self._p = global_batch, global_batch // process_count, process_index
    full, rem = divmod(len(parent), global_batch)
    self._length = full * self._b + (max(0, min(self._b, rem - self._p * self._b)) if keep_remainder else 0)

  def __len__(self) -> int:
    return self._length

  def _index(self, i: int) -> int:
    return (i // self._b) * self._B + self._p * self._b + i % self._b

  def __getitem__(self, i):
    if isinstance(i, slice):
      return self.slice(i)
    return self._parent[self._index(i)]

  def __str__(self) -> str:
    return f"HostRows(global_batch={self._B}, process={self._p})"


class Loader:
  """Iterator of numpy batches with a checkpointable position.

  `next(loader)` -> dict of numpy arrays; `get_state()` -> JSON-serialisable dict; `set_state(state)` makes
  the next batch the one an uninterrupted loader would yield after the state was taken. `host`: the host-side
  rows of the batch just yielded (`formats.HOST`: gold answer strings, contexts, reference texts), kept out of
  the batch so that only arrays reach the device; None for formats without any.
  """

  def __init__(self, dataset: grain.IterDataset, info: dict[str, Any]):
    self.dataset, self.info = dataset, info
    self._it = iter(dataset)
    self.host = None

  def __iter__(self) -> "Loader":
    return self

  def __next__(self) -> dict[str, np.ndarray]:
    batch = next(self._it)
    self.host = batch.pop(formats.HOST, None)
    return batch

  def get_state(self) -> dict:
    return self._it.get_state()

  def set_state(self, state: dict) -> None:
    self._it.set_state(state)


def _check(batch_size, process_index, process_count, max_length):
  if process_count < 1 or not 0 <= process_index < process_count:
    raise ValueError(f"process_index must be in [0, process_count), got {process_index} of {process_count}")
  if batch_size < process_count or batch_size % process_count:
    raise ValueError(f"batch_size {batch_size} (global) must be a positive multiple of process_count "
                     f"{process_count}")
  if max_length < 2:
    raise ValueError(f"max_length must be at least 2, got {max_length}")


def make_loader(task, split: str, *, tokenizer, batch_size: int, max_length: int, seed: int = 0,
                shuffle: bool = True, num_epochs: int | None = None, process_index: int = 0,
                process_count: int = 1, model_family: str = "encoder", data_dir: str | None = None,
                drop_remainder: bool = True, padding: str = "max_length",
                max_target_length: int | None = None) -> Loader:
  """Batches of `task`'s `split` for this process: batch_size // process_count rows of the global batch.

  num_epochs=None repeats forever. padding: "max_length" (fixed [b, max_length]), "longest" or "bucket"
  (powers of two). LM tasks (decoder only) pack documents into rows of max_length. See `formats` for the
  arrays each (task kind, model_family) pair yields.
  """
  _check(batch_size, process_index, process_count, max_length)
  if padding not in formats.PADDINGS:
    raise ValueError(f"padding must be one of {formats.PADDINGS}, got {padding!r}")
  b = batch_size // process_count
  info = dict(task=task.name, split=split, batch_size=batch_size, per_process=b, model_family=model_family)
  spec = get_kind(task.kind)
  if spec.packed:
    if model_family not in spec.formatters:
      raise ValueError(f"task kind {task.kind!r} needs model_family=" + " or ".join(map(repr, spec.formatters))
                       + f", got {model_family!r}")
    return Loader(_lm_dataset(task, split, tokenizer, b, max_length, seed, shuffle, num_epochs, process_index,
                              process_count, data_dir, spec.formatter(model_family), drop_remainder), info)
  fmt = spec.formatter(model_family)
  kw = {"max_target_length": max_target_length} if fmt is formats.seq2seq_text_to_text else {}
  ds = grain.MapDataset.source(task.open(split, data_dir))
  if shuffle:
    ds = ds.shuffle(seed=seed)
  ds = ds.repeat(num_epochs)
  ds = HostRows(ds, batch_size, process_index, process_count, keep_remainder=not drop_remainder)
  ds = ds.batch(b, drop_remainder=drop_remainder, batch_fn=functools.partial(
      fmt, task, tok=tokenizer, max_length=max_length, padding=padding, **kw))
  return Loader(ds.to_iter_dataset(READ_OPTIONS), info)


PACKING_BINS = 64  # rows packed at once: more bins fill rows fuller (first fit); 64 fill ~91% of 64-token rows


def _lm_dataset(task, split, tok, b, max_length, seed, shuffle, num_epochs, process_index, process_count,
                data_dir, document=formats.lm_document, drop_remainder: bool = True) -> grain.IterDataset:
  ds = grain.MapDataset.source(task.open(split, data_dir))[process_index::process_count]
  if shuffle:
    ds = ds.shuffle(seed=seed)
  ds = ds.repeat(num_epochs)
  ds = ds.map(lambda e: document(e["text"], tok, max_length))
  ds = ds.to_iter_dataset(READ_OPTIONS).filter(lambda r: r["input_ids"].size > 0)
  ds = grain.experimental.FirstFitPackIterDataset(
      ds, length_struct={"input_ids": max_length, "labels": max_length}, num_packing_bins=max(b, PACKING_BINS),
      seed=seed, shuffle_bins=False)
  # An evaluation keeps its last short batch (the evaluator pads it), so a small split is not lost.
  return ds.map(formats.finish_packed).batch(b, drop_remainder=drop_remainder)
