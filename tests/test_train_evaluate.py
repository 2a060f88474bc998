"""Whole-split evaluation: a short last batch gives a finite loss equal to the unpadded one, seq2seq generation
length comes from the config (not the label width), SQuAD EM/F1 score the predicted span's original text
against every gold answer string."""

import json

import jax
import numpy as np
import optax
import pytest
from flax import nnx

from lightft_jax import data, metrics as M
from lightft_jax.data import formats
from lightft_jax.data.tasks import Task
from lightft_jax.models import Transformer, get_preset
from lightft_jax.models.assets import minilm_dir
from lightft_jax.models.hf import load_tokenizer
from lightft_jax.train import evaluate as ev, sharding as shd, steps

SMALL = dict(vocab_size=30522, d_model=32, n_heads=2, d_ff=64, n_layers=1, max_positions=64)
N = 11


@pytest.fixture(scope="module")
def tok():
  return load_tokenizer(str(minilm_dir()))


def program(preset, head, kind, num_labels=None, **overrides):
  kw = {} if num_labels is None else {"num_labels": num_labels}
  model = Transformer(get_preset(preset, **{**SMALL, **overrides}), task=head, rngs=nnx.Rngs(0), **kw)
  mesh = shd.make_mesh(1, 1, 1, devices=jax.devices()[:1])
  prog = steps.build_program(model, nnx.Param, optax.sgd(0.1), kind=kind, mesh=mesh)
  state = steps.init_state(prog, 0)
  return prog, state["params"], *steps.place_frozen(prog)


@pytest.fixture(scope="module")
def cls_task(tmp_path_factory):
  path = tmp_path_factory.mktemp("cls") / "test.jsonl"
  path.write_text("".join(json.dumps({"text": f"review {i} " + "good " * (i % 4), "label": i % 2}) + "\n"
                          for i in range(N)))
  return data.get_task("jsonl", path={"test": str(path)}, label_names=["neg", "pos"])


def test_short_last_batch_gives_the_unpadded_loss(cls_task, tok):
  """11 rows in batches of 4 (the loop's eval loader: no shuffle, one epoch, remainder kept): the last batch
  has 3 real rows and a padding row. The loss used to be NaN there (a -100 class label for the padding row
  indexes outside the logits in the cross-entropy; NaN times its zero weight is still NaN)."""
  prog, params, frozen, rest = program("tiny-bert", "classification", "classification", num_labels=2)
  loader = lambda bs: data.make_loader(cls_task, "test", tokenizer=tok, batch_size=bs, max_length=16,
                                       shuffle=False, num_epochs=1, drop_remainder=False)
  split = ev.evaluate(prog, params, frozen, rest, loader(4), task=cls_task, local_rows=4)
  whole = ev.evaluate(prog, params, frozen, rest, loader(N), task=cls_task, local_rows=N)
  assert np.isfinite(split["loss"]), split
  assert split["examples"] == whole["examples"] == N
  assert split["loss"] == pytest.approx(whole["loss"], rel=1e-5)
  assert split["accuracy"] == whole["accuracy"]
  json.dumps(split, allow_nan=False)  # strict JSON, as results.json is written


def test_pad_batch_fills_by_label_kind():
  b = ev.pad_batch({"labels": np.array([1, 0], np.int32), "tok": np.ones((2, 3), np.int32)}, 3)
  assert b["labels"].tolist() == [1, 0, 0] and b["weights"].tolist() == [1, 1, 0]
  t = ev.pad_batch({"labels": np.array([[1, 2], [3, -100]], np.int32)}, 3)
  assert t["labels"][2].tolist() == [-100, -100]  # per-token labels: ignored positions
  r = ev.pad_batch({"labels": np.array([0.5], np.float32)}, 2)
  assert r["labels"].tolist() == [0.5, 0.0]


def test_unlabelled_split_is_a_clear_error(tok):
  """TFDS marks unlabelled splits (GLUE test) with label -1: an error that says what to do, not a NaN loss."""
  prog, params, frozen, rest = program("tiny-bert", "classification", "classification", num_labels=2)
  task = Task("toy", "classification", ("text",), ["a", "b"], ("accuracy",), lambda s, d: [])
  batch = formats.encoder_classification(task, [{"text": "x", "label": -1}, {"text": "y", "label": 1}], tok, 8)
  with pytest.raises(ValueError, match="test_split=''"):
    ev.evaluate(prog, params, frozen, rest, [batch], task=task, local_rows=2)


SEQ2SEQ = [{"source": f"say number {i}", "target": f"number {i} is here"} for i in range(3)]


def test_seq2seq_generation_length_comes_from_the_config_not_the_labels(tok):
  task = Task("toy", "seq2seq", ("source",), None, ("bleu", "rouge"), lambda s, d: SEQ2SEQ)
  prog, params, frozen, rest = program("tiny-t5", "lm", "seq2seq", head_dim=16)
  model = prog.model(params, frozen, rest, train=False)
  narrow = formats.seq2seq_text_to_text(task, SEQ2SEQ, tok, 12, max_target_length=2)
  wide = formats.seq2seq_text_to_text(task, SEQ2SEQ, tok, 12, max_target_length=12)
  assert narrow["labels"].shape[1] == 2 and wide["labels"].shape[1] == 12
  texts = {}
  for name, b, n in (("narrow", narrow, 8), ("wide", wide, 8), ("wide", wide, 2)):
    arrays = {k: v for k, v in b.items() if k != formats.HOST}
    texts[name, n] = ev._generated_texts(model, ev.pad_batch(arrays, 4), tok, n, b[formats.HOST])
  assert texts["narrow", 8] == texts["wide", 8]  # same predictions whatever the label width
  # The references are the targets as written, not the (truncated) labels.
  assert texts["narrow", 8][1][:3] == [e["target"] for e in SEQ2SEQ]
  # The length follows max_new_tokens: greedy continuations of 2 tokens are prefixes of the 8-token ones, and
  # strictly shorter.
  for short, long in zip(texts["wide", 2][0][:3], texts["wide", 8][0][:3]):
    assert long.startswith(short) and len(short) < len(long), (short, long)
  m = [ev.evaluate(prog, params, frozen, rest, [b], task=task, local_rows=4, tokenizer=tok, max_new_tokens=8)
       for b in (narrow, wide)]
  assert m[0]["bleu"] == m[1]["bleu"] and m[0]["rouge1"] == m[1]["rouge1"]
  with pytest.raises(ValueError, match="--config.eval.max_new_tokens"):
    ev.evaluate(prog, params, frozen, rest, [wide], task=task, local_rows=4, tokenizer=tok)


def test_span_text_is_the_original_text(tok):
  ctx = "In 1944 the U.S. Army reached Paris, France's capital."
  ex = {"question": "Who reached Paris?", "context": ctx, "answers": {"text": ["the U.S. Army"],
                                                                       "answer_start": [8]}}
  b = formats.encoder_qa(None, [ex], tok, 64)
  offsets, s, e = b[formats.HOST]["offsets"][0], int(b["start_positions"][0]), int(b["end_positions"][0])
  assert ev.span_text(ctx, offsets, s, e) == "the U.S. Army"
  assert tok.decode(b["input_ids"][0, s:e + 1]) != "the U.S. Army"  # what the metric used to see
  assert ev.span_text(ctx, offsets, 0, 2) == ""  # [CLS] + question tokens: no context text
  assert ev.span_text(ctx, offsets, 0, s) == "In 1944 the"  # a span reaching into the context: its context part


QA = [{"question": "who wrote it?", "context": "The book was written by Alice, in Paris (France).",
       "answers": {"text": ["Alice", "by Alice"], "answer_start": [24, 21]}},
      {"question": "where?", "context": "The book was written by Alice, in Paris (France).",
       "answers": {"text": ["Paris", "in Paris (France)", "Paris (France)"], "answer_start": [34, 31, 34]}}]


def test_qa_em_f1_take_every_gold_answer_on_the_original_text(tok):
  task = Task("toyqa", "qa", ("question", "context"), None, ("squad",), lambda s, d: QA)
  prog, params, frozen, rest = program("tiny-bert", "qa", "qa")
  batch = formats.encoder_qa(task, QA, tok, 48, padding="longest")
  host = batch.pop(formats.HOST)
  pred = jax.device_get(prog.eval_step(params, frozen, rest, shd.global_batch(ev.pad_batch(batch, 2),
                                                                               prog.mesh)))["predictions"]
  texts = [ev.span_text(q["context"], o, int(s), int(e)) for q, o, (s, e) in zip(QA, host["offsets"], pred)]
  golds = [list(q["answers"]["text"]) for q in QA]
  m = ev.evaluate(prog, params, frozen, rest, [{**batch, formats.HOST: host}], task=task, local_rows=2)
  want = M.squad_em_f1(texts, golds)
  assert m["exact_match"] == pytest.approx(want["exact_match"]) and m["f1"] == pytest.approx(want["f1"])
  # Every gold answer reaches the metric: make the model's own span text the *last* gold answer of each
  # question (after a decoy first answer, which is also what the gold token span points at).
  forced = [dict(q, answers={"text": ["zzz decoy"] + [t], "answer_start": [0, 0]}) for q, t in zip(QA, texts)]
  fb = formats.encoder_qa(task, forced, tok, 48, padding="longest")
  m = ev.evaluate(prog, params, frozen, rest, [fb], task=task, local_rows=2)
  assert m["exact_match"] == pytest.approx(100.0)
  # Through a Loader the host rows come from `loader.host`, with the same result.
  loader = data.make_loader(Task("toyqa", "qa", ("question", "context"), None, ("squad",), lambda s, d: forced),
                            "train", tokenizer=tok, batch_size=2, max_length=48, shuffle=False, num_epochs=1,
                            padding="longest")
  m2 = ev.evaluate(prog, params, frozen, rest, loader, task=task, local_rows=2)
  assert m2["exact_match"] == pytest.approx(100.0) and m2["f1"] == pytest.approx(m["f1"])
