"""The real TFDS builders, run offline through tfds.testing.mock_data (random records matching features)."""

import functools
import json
from unittest import mock

import numpy as np
import pytest

tfds = pytest.importorskip("tensorflow_datasets")
from tensorflow_datasets.testing import mocking  # noqa: E402

from lightft_jax import data  # noqa: E402
from lightft_jax.data import sources  # noqa: E402
from lightft_jax.models import assets  # noqa: E402
from lightft_jax.models.tokenizer import Tokenizer  # noqa: E402

T = 24


@pytest.fixture(scope="module")
def tok():
  return Tokenizer.from_file(assets.minilm_dir())


@pytest.fixture
def mocked():
  # Sequence features of one record (CoNLL tokens / tags) share one length, as in the real data.
  init = functools.partialmethod(mocking.RandomFakeGenerator.__init__, constant_dynamic_shape=True)
  with tfds.testing.mock_data(num_examples=24), mock.patch.object(mocking.RandomFakeGenerator, "__init__", init):
    yield


# Loading the super_glue builder module imports all of TensorFlow + Keras (~30 s on 2 busy cores): slow.
SUPER_GLUE = [pytest.param(n, f, marks=pytest.mark.slow)
              for n, f in (("boolq", "encoder"), ("wic", "encoder"), ("copa", "decoder"), ("cb", "encoder_decoder"))]
CASES = [("cola", "encoder"), ("mrpc", "encoder"), ("stsb", "encoder"), ("mnli", "encoder"),
         ("ag_news", "encoder"), ("conll2003", "encoder"), ("squad", "encoder"), ("sst2", "decoder"),
         ("stsb", "encoder_decoder"), ("wmt14_en_de", "encoder_decoder")] + SUPER_GLUE


@pytest.mark.parametrize("name,family", CASES)
def test_real_builder_batches(mocked, tok, name, family):
  task = data.get_task(name)
  ex = task.examples("train", limit=3)
  assert len(ex) == 3 and all(isinstance(ex[0][f], (str, list)) for f in task.text_fields)
  b = next(data.make_loader(task, "train", tokenizer=tok, batch_size=4, max_length=T, model_family=family))
  assert b["input_ids"].shape == b["attention_mask"].shape == (4, T)
  assert b["input_ids"].dtype == np.int32 and np.all(b["input_ids"] < tok.vocab_size)
  if task.kind == "classification" and family == "encoder":
    assert b["labels"].dtype == np.int32 and np.all((0 <= b["labels"]) & (b["labels"] < task.num_labels))
  elif task.kind == "regression" and family == "encoder":
    assert b["labels"].dtype == np.float32 and b["labels"].shape == (4,)
  elif task.kind == "token_classification":
    lab = b["labels"]
    assert lab.shape == (4, T) and np.all((lab == -100) | ((0 <= lab) & (lab < task.num_labels)))
    assert np.all(lab[b["attention_mask"] == 0] == -100) and np.any(lab != -100)
  elif task.kind == "qa":
    assert np.all((0 <= b["start_positions"]) & (b["start_positions"] <= b["end_positions"])
                  & (b["end_positions"] < T))
  else:  # text-to-text
    assert b["labels"].dtype == np.int32 and np.any(b["labels"] != -100)
    assert np.all((b["labels"] == -100) | ((0 <= b["labels"]) & (b["labels"] < tok.vocab_size)))
  if name in ("mrpc", "mnli", "wic"):
    assert b["token_type_ids"].max() == 1


def test_lm_packing_hosts_and_resume(mocked, tok):
  task = data.get_task("lm1b")
  kw = dict(tokenizer=tok, batch_size=4, max_length=T, model_family="decoder", seed=1)
  run = data.make_loader(task, "train", **kw)
  b = next(run)
  assert {"input_ids", "labels", "attention_mask", "segment_ids", "positions"} <= set(b)
  assert b["input_ids"].shape == (4, T) and b["segment_ids"].max() >= 2  # several documents share a row
  seg, lab, pos = b["segment_ids"], b["labels"], b["positions"]
  assert np.all(lab[seg == 0] == -100) and np.all(pos[:, 0] == 0)
  starts = (pos == 0) & (seg > 0)
  assert np.array_equal(starts.sum(1), seg.max(1))  # positions restart once per packed document
  # labels are next tokens within a document
  same = (seg[:, 1:] == seg[:, :-1]) & (seg[:, 1:] > 0)
  assert np.array_equal(lab[:, :-1][same], b["input_ids"][:, 1:][same])
  state = json.loads(json.dumps(run.get_state()))
  want = next(run)
  resumed = data.make_loader(task, "train", **kw)
  resumed.set_state(state)
  got = next(resumed)
  assert all(np.array_equal(want[k], got[k]) for k in want)
  with pytest.raises(ValueError, match="model_family='decoder'"):
    data.make_loader(task, "train", tokenizer=tok, batch_size=4, max_length=T)


def test_hosts_read_disjoint_rows_of_a_tfds_source(mocked, tok):
  task = data.get_task("sst2")
  kw = dict(tokenizer=tok, batch_size=8, max_length=T, seed=2)
  whole = next(data.make_loader(task, "train", **kw))
  parts = [next(data.make_loader(task, "train", process_index=p, process_count=2, **kw)) for p in range(2)]
  assert all(len(p["labels"]) == 4 for p in parts)
  for k in whole:
    assert np.array_equal(np.concatenate([p[k] for p in parts]), whole[k])


def test_unprepared_dataset_says_how_to_prepare(tmp_path):
  with pytest.raises(sources.DatasetNotPreparedError, match=r"tfds build glue/cola --data_dir="):
    data.get_task("cola").examples("train", data_dir=str(tmp_path))


def test_unknown_task_lists_registered():
  with pytest.raises(ValueError, match=r"registered tasks: .*'rotten_tomatoes'.*'sst2'"):
    data.get_task("sst3")


def test_task_metrics_dispatch():
  assert data.get_task("cola").metrics([1, 0, 1], [1, 0, 1]) == {"matthews_corrcoef": 1.0, "accuracy": 1.0}
  ner = data.get_task("conll2003").metrics([[1, 2, 0, 7]], [[1, 2, -100, 5]])
  assert ner["f1"] == pytest.approx(0.5)  # PER right, MISC vs LOC wrong; the -100 word is skipped
