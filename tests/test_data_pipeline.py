"""Grain loaders over a user JSONL task and the per-family formatters, with the real MiniLM tokenizer."""

import json

import numpy as np
import pytest

from lightft_jax import data
from lightft_jax.data import formats
from lightft_jax.models import assets
from lightft_jax.models.tokenizer import Tokenizer

N = 37


@pytest.fixture(scope="module")
def tok():
  return Tokenizer.from_file(assets.minilm_dir())


@pytest.fixture(scope="module")
def task(tmp_path_factory):
  path = tmp_path_factory.mktemp("user") / "reviews.jsonl"
  labels = ["bad", "good", "meh"]
  with path.open("w") as f:
    for i in range(N):
      f.write(json.dumps({"text": f"review number {i} " + "word " * (i % 7), "label": labels[i % 3]}) + "\n")
  return data.get_task("jsonl", path=str(path), text_fields=("text",), label_field="label")


def _ids(batch, tok):
  """The review number in each row (decoded from input_ids), to follow examples through the pipeline."""
  return [int(tok.decode(r).split()[2]) for r in batch["input_ids"]]


def test_user_task_examples_and_labels(task):
  assert task.kind == "classification" and task.label_names == ["bad", "good", "meh"]
  ex = task.examples("train", limit=4)
  assert [e["label"] for e in ex] == [0, 1, 2, 0]
  with pytest.raises(ValueError, match="splits"):
    task.examples("validation")


def test_batches_shapes_dtypes_and_epoch_coverage(task, tok):
  loader = data.make_loader(task, "train", tokenizer=tok, batch_size=8, max_length=16, num_epochs=1,
                            drop_remainder=False)
  batches = list(loader)
  assert [len(b["labels"]) for b in batches] == [8, 8, 8, 8, 5]
  b = batches[0]
  assert b["input_ids"].shape == (8, 16) and b["input_ids"].dtype == np.int32
  assert b["attention_mask"].dtype == np.int32 and b["labels"].dtype == np.int32
  assert set(np.concatenate([b["labels"] for b in batches])) <= {0, 1, 2}
  seen = sum((_ids(b, tok) for b in batches), [])
  assert sorted(seen) == list(range(N))  # one epoch = every example once
  assert seen != list(range(N))  # shuffled


def test_same_seed_same_order_new_seed_new_order(task, tok):
  mk = lambda seed: data.make_loader(task, "train", tokenizer=tok, batch_size=8, max_length=16, seed=seed)
  a, b, c = mk(1), mk(1), mk(2)
  first = [_ids(next(a), tok) for _ in range(6)]
  assert first == [_ids(next(b), tok) for _ in range(6)]
  assert first != [_ids(next(c), tok) for _ in range(6)]
  # later epochs are reshuffled (6 batches of 8 > 37 examples)
  assert first[0] != first[4]


def test_two_hosts_slices_are_disjoint_and_cover_the_global_batch(task, tok):
  kw = dict(tokenizer=tok, batch_size=8, max_length=16, seed=3)
  whole = data.make_loader(task, "train", **kw)
  hosts = [data.make_loader(task, "train", process_index=p, process_count=2, **kw) for p in range(2)]
  for step in range(6):
    g = _ids(next(whole), tok)
    parts = [_ids(next(h), tok) for h in hosts]
    assert all(len(p) == 4 for p in parts)
    if step < 4:  # within the first epoch (37 examples) every example appears once
      assert not set(parts[0]) & set(parts[1])
    assert parts[0] + parts[1] == g
  with pytest.raises(ValueError, match="multiple of process_count"):
    data.make_loader(task, "train", tokenizer=tok, batch_size=3, max_length=16, process_count=2)


def test_restored_loader_yields_the_next_batch(task, tok):
  mk = lambda: data.make_loader(task, "train", tokenizer=tok, batch_size=8, max_length=16, seed=5)
  run = mk()
  for _ in range(6):  # cross an epoch boundary
    next(run)
  state = json.loads(json.dumps(run.get_state()))
  want = [next(run) for _ in range(2)]
  resumed = mk()
  resumed.set_state(state)
  for w in want:
    got = next(resumed)
    assert all(np.array_equal(w[k], got[k]) for k in w)


def test_padding_modes(task, tok):
  for padding, check in (("longest", lambda t: t < 64), ("bucket", lambda t: t in (8, 16, 32, 64))):
    b = next(data.make_loader(task, "train", tokenizer=tok, batch_size=4, max_length=64, padding=padding))
    t = b["input_ids"].shape[1]
    assert check(t) and b["attention_mask"][:, -1].sum() >= (padding == "longest")
  with pytest.raises(ValueError, match="padding must be one of"):
    data.make_loader(task, "train", tokenizer=tok, batch_size=4, max_length=64, padding="pack")


def test_decoder_text_to_text_labels_are_the_answer_tokens(task, tok):
  b = next(data.make_loader(task, "train", tokenizer=tok, batch_size=4, max_length=48, model_family="decoder"))
  for ids, labels, mask in zip(b["input_ids"], b["labels"], b["attention_mask"]):
    pos = np.nonzero(labels != -100)[0]
    n = mask.sum()
    assert pos[-1] == n - 1  # last real position predicts the final answer token
    answer = tok.decode(labels[pos])
    assert answer in task.label_names
    # labels are next tokens: every answer token but the last is also the input at the following position
    assert np.array_equal(labels[pos[:-1]], ids[pos[:-1] + 1])
    assert "answer :" in tok.decode(ids[:pos[0] + 1])


def test_encoder_decoder_targets(task, tok):
  b = next(data.make_loader(task, "train", tokenizer=tok, batch_size=4, max_length=48,
                            model_family="encoder_decoder", max_target_length=4))
  assert b["labels"].shape == b["decoder_input_ids"].shape == (4, 4)
  assert np.all(b["decoder_input_ids"][:, 0] == tok.pad_token_id)
  for dec, labels in zip(b["decoder_input_ids"], b["labels"]):
    n = int((labels != -100).sum())
    assert np.array_equal(dec[1:n], labels[:n - 1])  # decoder inputs = targets shifted right
    assert tok.decode(labels[:n]) in task.label_names


def test_ner_first_subword_gets_the_label(tok):
  task = data.get_task("conll2003")
  ex = {"tokens": ["Zelenskyy", "visited", "Kharkiv", "yesterday"], "labels": [1, 0, 5, 0]}
  b = formats.encoder_token_classification(task, [ex], tok, max_length=16, padding="longest")
  labels = b["labels"][0]
  words = tok.tok.encode(ex["tokens"], is_pretokenized=True).word_ids
  firsts = [i for i, w in enumerate(words) if w is not None and (i == 0 or words[i - 1] != w)]
  assert [int(labels[i]) for i in firsts] == ex["labels"]
  assert np.all(np.delete(labels, firsts) == -100)
  assert len(words) > len(ex["tokens"]) + 2  # some word was split, so the -100 continuation case ran


def test_qa_span_targets_recover_the_answer(tok):
  task = data.get_task("squad")
  ctx = "The Normans were the people who in the 10th and 11th centuries gave their name to Normandy."
  ex = {"question": "When did the Normans name Normandy?", "context": ctx,
        "answers": {"text": ["10th and 11th centuries"], "answer_start": [ctx.index("10th")]}}
  b = formats.encoder_qa(task, [ex, dict(ex, answers={"text": [], "answer_start": []})], tok, max_length=64)
  s, e = b["start_positions"][0], b["end_positions"][0]
  assert 0 < s <= e and tok.decode(b["input_ids"][0, s:e + 1]) == "10th and 11th centuries"
  assert b["start_positions"][1] == b["end_positions"][1] == 0
  short = formats.encoder_qa(task, [ex], tok, max_length=12)  # answer cut off -> points at [CLS]
  assert short["start_positions"][0] == 0


def test_qa_loader_keeps_every_gold_answer_on_the_host(tok):
  """All gold answer strings and the contexts reach evaluation through `loader.host`; the batch itself
  holds only arrays (what the device gets)."""
  ctx = "The Normans gave their name to Normandy, a region in France."
  rows = [{"question": "Who named Normandy?", "context": ctx,
           "answers": {"text": ["The Normans", "Normans"], "answer_start": [0, 4]}},
          {"question": "Where is Normandy?", "context": ctx,
           "answers": {"text": ["France", "in France", "a region in France"], "answer_start": [53, 50, 41]}}]
  task = data.Task("qa_rows", "qa", ("question", "context"), None, ("squad",), lambda s, d: rows)
  loader = data.make_loader(task, "train", tokenizer=tok, batch_size=2, max_length=32, shuffle=False,
                            num_epochs=1, padding="longest")
  batch = next(loader)
  assert formats.HOST not in batch and all(isinstance(v, np.ndarray) for v in batch.values())
  assert loader.host["answers"] == [r["answers"]["text"] for r in rows]
  assert loader.host["contexts"] == [ctx, ctx]
  offsets = loader.host["offsets"]
  assert offsets.shape == batch["input_ids"].shape + (2,)
  for r, row in enumerate(rows):
    s, e = batch["start_positions"][r], batch["end_positions"][r]
    assert ctx[offsets[r, s, 0]:offsets[r, e, 1]] == row["answers"]["text"][0]  # the first answer's span
    question_len = len(tok.encode(row["question"]))  # [CLS] question [SEP]: not context
    assert np.all(offsets[r, :question_len] == -1)


def test_text_to_text_loader_keeps_the_target_texts(task, tok):
  for family in ("decoder", "encoder_decoder"):
    loader = data.make_loader(task, "train", tokenizer=tok, batch_size=4, max_length=48, shuffle=False,
                              model_family=family)
    batch = next(loader)
    assert formats.HOST not in batch
    want = [task.target_text(e) for e in task.examples("train", limit=4)]
    assert loader.host == {"references": want}


def test_unsupported_family_is_a_clear_error(tok):
  with pytest.raises(ValueError, match="supported: \\['encoder'\\]"):
    formats.formatter("token_classification", "decoder")
  with pytest.raises(ValueError, match="model_family must be one of"):
    formats.formatter("classification", "gpt")
