"""Evaluation of text outputs: greedy generation scored with BLEU / ROUGE (seq2seq), best-span QA metrics."""

import jax
import numpy as np
import optax
import pytest
from flax import nnx

from lightft_jax import metrics
from lightft_jax.data import formats
from lightft_jax.data.tasks import Task
from lightft_jax.models import Transformer, get_preset
from lightft_jax.models.assets import minilm_dir
from lightft_jax.models.generate import generate
from lightft_jax.models.hf import load_tokenizer
from lightft_jax.train import sharding as shd, steps
from lightft_jax.train.evaluate import evaluate

SMALL = dict(vocab_size=30522, d_model=32, n_heads=2, d_ff=64, n_layers=1, max_positions=64)
SEQ2SEQ = [{"source": f"say number {i}", "target": f"number {i} is here"} for i in range(3)]


@pytest.fixture(scope="module")
def tok():
  return load_tokenizer(str(minilm_dir()))


def program(preset, task, kind, seed=0, **overrides):
  model = Transformer(get_preset(preset, **{**SMALL, **overrides}), task=task, rngs=nnx.Rngs(seed))
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
  # Reference: each row's prompt generated alone (no padding), 8 greedy tokens, scored by the metric libraries.
  own = own_greedy_texts(prog, params, frozen, rest, batch, tok, 8)
  assert all(own), own  # the tiny model says something, so the self-scored run below is meaningful
  expected = metrics.compute(("bleu", "rouge"), own, [r["target"] for r in SEQ2SEQ])
  for k in ("bleu", "rouge1", "rougeL"):
    assert m[k] == pytest.approx(expected[k], abs=1e-9), (k, m, expected)
  # References replaced by the model's own greedy texts (the prompts stay the same): a perfect score, so
  # generation inside evaluate (padded batch, `max_new_tokens`, not the label width) matches the reference.
  self_batch = {**batch, formats.HOST: {**batch[formats.HOST], "references": own}}
  m_self = evaluate(prog, params, frozen, rest, [self_batch], task=task, local_rows=4, tokenizer=tok,
                    max_new_tokens=8)
  assert m_self["rouge1"] == m_self["rougeL"] == 1.0, (own, m_self)  # rouge-score F-measures are fractions
  assert m_self["bleu"] == pytest.approx(metrics.compute(("bleu",), own, own)["bleu"], abs=1e-9)
  no_text = evaluate(prog, params, frozen, rest, [batch], task=task, local_rows=4)
  assert "bleu" not in no_text and no_text["loss"] == pytest.approx(m["loss"])


def own_greedy_texts(prog, params, frozen, rest, batch, tok, max_new_tokens):
  """Greedy continuation of each row's prompt on its own: the encoder input (encoder-decoder), or the tokens
  before the first labelled position (decoder; labels are shifted, so up to and including it)."""
  model = prog.model(params, frozen, rest, train=False)
  texts = []
  for r in range(len(batch["labels"])):
    if "decoder_input_ids" in batch:
      ids = batch["input_ids"][r][batch["attention_mask"][r] > 0]
    else:
      ids = batch["input_ids"][r][:np.flatnonzero(batch["labels"][r] != -100)[0] + 1]
    stop = () if tok.eos_token_id is None else (tok.eos_token_id,)
    out = np.asarray(generate(model, ids[None].astype(np.int32), np.ones((1, len(ids)), np.int32),
                              max_new_tokens=max_new_tokens, stop_tokens=stop, pad_token_id=tok.pad_token_id))[0]
    texts.append(tok.decode([int(t) for t in out if t != tok.pad_token_id]).strip())
  return texts


QA = [{"question": "who wrote it?", "context": "the book was written by alice in paris.",
       "answers": {"text": ["alice"], "answer_start": [24]}},
      {"question": "where?", "context": "the book was written by alice in paris.",
       "answers": {"text": ["paris"], "answer_start": [33]}}]


def test_qa_eval_best_span_em(tok):
  task = Task("toyqa", "qa", ("question", "context"), None, ("squad",), lambda s, d: QA)
  batch = formats.encoder_qa(task, QA, tok, 32, padding="longest")
  host = batch.pop(formats.HOST)  # gold answer strings and contexts stay on the host
  prog, params, frozen, rest = program("tiny-bert", "qa", "qa", seed=2)  # a seed whose best spans are in the context
  m = evaluate(prog, params, frozen, rest, [{**batch, formats.HOST: host}], task=task, local_rows=2, tokenizer=tok)
  own = jax.device_get(prog.eval_step(params, frozen, rest, shd.global_batch(batch, prog.mesh)))["predictions"]
  s, e = own[:, 0], own[:, 1]
  assert np.all(s <= e) and np.all(e - s < 30)
  # Reference: the best spans' original text (context tokens only, first token's start to last token's end),
  # scored against every gold answer string by the SQuAD metric.
  texts = []
  for context, offsets, a, b in zip(host["contexts"], host["offsets"], s, e):
    toks = [t for t in range(int(a), int(b) + 1) if offsets[t, 0] >= 0]
    texts.append(context[offsets[toks[0], 0]:offsets[toks[-1], 1]] if toks else "")
  gold = np.stack([batch["start_positions"], batch["end_positions"]], -1)
  assert all(texts), texts
  assert m["span_em"] == np.mean([np.array_equal(p, g) for p, g in zip(own, gold)])
  expected = metrics.compute(("squad",), texts, host["answers"])
  assert (m["exact_match"], m["f1"]) == pytest.approx((expected["exact_match"], expected["f1"])), (texts, m)
  # Gold spans and answer strings set to the model's own best spans: every metric is perfect.
  forced = {**batch, "start_positions": s.astype(np.int32), "end_positions": e.astype(np.int32),
            formats.HOST: {**host, "answers": [[t] for t in texts]}}
  m = evaluate(prog, params, frozen, rest, [forced], task=task, local_rows=2, tokenizer=tok)
  assert m["span_em"] == 1.0 and m["exact_match"] == 100.0 and m["f1"] == 100.0
