"""Task subsets (`data.tasks.with_subsets`): a k-shot training split that is exactly the few-shot harness's
demonstrations for (seed, k), and a split cut to its first n examples."""

import json

import numpy as np
import pytest

from lightft_jax import data
from lightft_jax.icl.fewshot import FewShotOptions, _demo_sets


@pytest.fixture
def jsonl(tmp_path):
  path = tmp_path / "d.jsonl"
  path.write_text("".join(json.dumps({"text": f"example {i}", "label": i % 2}) + "\n" for i in range(50)))
  return str(path)


def _task(jsonl, **options):
  return data.get_task("jsonl", path=jsonl, split={"train": 0.6, "validation": 0.2, "test": 0.2}, **options)


@pytest.mark.parametrize("k,seed", [(4, 0), (16, 1), (1, 3)])
def test_train_k_is_the_icl_demonstration_set(jsonl, k, seed):
  full = _task(jsonl)
  pool = full.examples("train")
  sub = _task(jsonl, train_k=k, train_k_seed=seed)
  got = sub.examples("train")
  idx, _ = _demo_sets(FewShotOptions(ks=(k,), seeds=(seed,)), k, seed, pool, 1, [p["label"] for p in pool], 2,
                      None, "label")[0]
  assert got == [pool[i] for i in idx]
  assert len(got) == k
  assert sub.examples("validation") == full.examples("validation")  # other splits untouched


def test_hypernetwork_context_is_the_k_shot_training_set(jsonl):
  from lightft_jax.data.mixture import context_examples
  for k, seed in [(16, 0), (4, 2)]:
    texts = [e["text"] for e in _task(jsonl, train_k=k, train_k_seed=seed).examples("train")]
    assert context_examples(_task(jsonl), k, seed=seed) == texts


def test_train_k_seeds_differ_and_repeat(jsonl):
  a = _task(jsonl, train_k=8, train_k_seed=0).examples("train")
  assert a == _task(jsonl, train_k=8, train_k_seed=0).examples("train")
  assert a != _task(jsonl, train_k=8, train_k_seed=1).examples("train")


def test_split_limits_take_the_first_examples(jsonl):
  full = _task(jsonl)
  sub = _task(jsonl, split_limits={"test": 3})
  assert sub.examples("test") == full.examples("test")[:3]
  assert sub.examples("train") == full.examples("train")


def test_subset_errors(jsonl):
  with pytest.raises(ValueError, match="train_k=100"):
    _task(jsonl, train_k=100).examples("train")
  with pytest.raises(ValueError, match="lacks"):
    _task(jsonl, split_limits={"dev": 3})


def test_k_shot_loader_batches_only_the_k_examples(jsonl):
  from lightft_jax.models import load_tokenizer
  from lightft_jax.models.assets import minilm_dir
  task = _task(jsonl, train_k=4, train_k_seed=0)
  texts = {e["text"] for e in task.examples("train")}
  loader = data.make_loader(task, "train", tokenizer=load_tokenizer(minilm_dir()), batch_size=8, max_length=16)
  batch = next(iter(loader))
  assert batch["input_ids"].shape[0] == 8 and np.isin(batch["labels"], [0, 1]).all()
  assert len(texts) == 4
