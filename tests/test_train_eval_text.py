"""Evaluation of text outputs: greedy generation scored with BLEU / ROUGE (seq2seq), best-span QA metrics."""

import jax
import numpy as np
import optax
import pytest
from flax import nnx

from lightft_jax.data import formats
from lightft_jax.data.tasks import Task
from lightft_jax.models import Transformer, get_preset
from lightft_jax.models.assets import minilm_dir
from lightft_jax.models.hf import load_tokenizer
from lightft_jax.train import sharding as shd, steps
from lightft_jax.train.evaluate import evaluate

SMALL = dict(vocab_size=30522, d_model=32, n_heads=2, d_ff=64, n_layers=1, max_positions=64)
SEQ2SEQ = [{"source": f"say number {i}", "target": f"number {i} is here"} for i in range(3)]


@pytest.fixture(scope="module")
def tok():
  return load_tokenizer(str(minilm_dir()))


def program(preset, task, kind, **overrides):
  model = Transformer(get_preset(preset, **{**SMALL, **overrides}), task=task, rngs=nnx.Rngs(0))
  mesh = shd.make_mesh(1, 1, 1, devices=jax.devices()[:1])
  prog = steps.build_program(model, nnx.Param, optax.sgd(0.1), kind=kind, mesh=mesh)
  state = steps.init_state(prog, 0)
  return prog, state["params"], *steps.place_frozen(prog)


@pytest.mark.parametrize("preset,fmt", [("tiny-t5", formats.seq2seq_text_to_text),
                                        ("tiny-gpt2", formats.decoder_text_to_text)])
def test_seq2seq_eval_generates_and_scores_text(tok, preset, fmt):
  task = Task("toy", "seq2seq", ("source",), None, ("bleu", "rouge"), lambda s, d: SEQ2SEQ)
  batch = fmt(task, SEQ2SEQ, tok, 12, padding="longest")
  prog, params, frozen, rest = program(preset, "lm", "seq2seq", **({"head_dim": 16}
                                                                   if preset == "tiny-t5" else {}))
  m = evaluate(prog, params, frozen, rest, [batch], task=task, local_rows=4, tokenizer=tok, max_new_tokens=8)
  assert m["examples"] == 3 and np.isfinite(m["loss"])
  for k in ("bleu", "rouge1", "rougeL"):
    assert 0.0 <= m[k] <= 100.0, m
  no_text = evaluate(prog, params, frozen, rest, [batch], task=task, local_rows=4)
  assert "bleu" not in no_text and no_text["loss"] == pytest.approx(m["loss"])


QA = [{"question": "who wrote it?", "context": "the book was written by alice in paris.",
       "answers": {"text": ["alice"], "answer_start": [24]}},
      {"question": "where?", "context": "the book was written by alice in paris.",
       "answers": {"text": ["paris"], "answer_start": [33]}}]


def test_qa_eval_best_span_em(tok):
  task = Task("toyqa", "qa", ("question", "context"), None, ("squad",), lambda s, d: QA)
  batch = formats.encoder_qa(task, QA, tok, 32, padding="longest")
  host = batch.pop(formats.HOST)  # gold answer strings and contexts stay on the host
  prog, params, frozen, rest = program("tiny-bert", "qa", "qa")
  m = evaluate(prog, params, frozen, rest, [{**batch, formats.HOST: host}], task=task, local_rows=2, tokenizer=tok)
  assert 0.0 <= m["span_em"] <= 1.0 and 0.0 <= m["exact_match"] <= 100.0 and 0.0 <= m["f1"] <= 100.0
  # Gold spans set to the model's own best spans: every metric is perfect.
  own = jax.device_get(prog.eval_step(params, frozen, rest, shd.global_batch(batch, prog.mesh)))["predictions"]
  s, e = own[:, 0], own[:, 1]
  assert np.all(s <= e) and np.all(e - s < 30)
  forced = {**batch, "start_positions": s.astype(np.int32), "end_positions": e.astype(np.int32)}
  m = evaluate(prog, params, frozen, rest, [forced], task=task, local_rows=2, tokenizer=tok)
  assert m["span_em"] == 1.0  # (SQuAD EM/F1 on the answer strings: tests/test_train_evaluate.py)
