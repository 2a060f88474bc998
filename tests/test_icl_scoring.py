"""Choice log-likelihoods against `transformers`, the few-shot harness end to end on tiny models, bad input."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
import transformers as T
from flax import nnx

from lightft_jax.icl import run_icl_eval
from lightft_jax.icl.fewshot import FewShotOptions, evaluate_fewshot
from lightft_jax.icl.generation import cut_at_stop
from lightft_jax.icl.prompts import PromptTemplate
from lightft_jax.icl.scoring import score_choices
from lightft_jax.models import Transformer, from_pretrained, get_preset
from lightft_jax.models.assets import minilm_dir
from lightft_jax.models.tokenizer import Tokenizer

VOCAB = 97


@pytest.fixture(scope="module")
def gpt2_pair(tmp_path_factory):
  """A tiny random transformers GPT-2 (parameters perturbed off their init) and the same model loaded here."""
  torch.manual_seed(0)
  hf = T.GPT2LMHeadModel(T.GPT2Config(vocab_size=VOCAB, n_embd=32, n_layer=2, n_head=4, n_positions=64))
  with torch.no_grad():
    for p in hf.parameters():
      p.add_(0.1 * torch.randn(p.shape))
  path = tmp_path_factory.mktemp("gpt2")
  hf.eval().save_pretrained(path, safe_serialization=True)
  return hf, from_pretrained(path, task="lm")


def test_choice_loglik_matches_transformers(gpt2_pair):
  hf, ours = gpt2_pair
  rng = np.random.default_rng(0)
  contexts = [list(rng.integers(0, VOCAB, n)) for n in (7, 3, 12)]
  choices = [[list(rng.integers(0, VOCAB, n)) for n in lens] for lens in ((1, 3), (2,), (4, 1, 2))]
  ll, greedy = score_choices(ours, contexts, choices, batch_size=2, ctx_bucket=16)
  for ctx, chs, got, got_greedy in zip(contexts, choices, ll, greedy):
    assert got.shape == (len(chs),)
    for choice, value, is_greedy in zip(chs, got, got_greedy):
      with torch.no_grad():
        logits = hf(torch.tensor([ctx + choice])).logits[0].double()
      logp = torch.log_softmax(logits, -1)
      rows = logp[len(ctx) - 1:len(ctx) - 1 + len(choice)]
      ref = float(sum(rows[j, t] for j, t in enumerate(choice)))
      assert abs(ref - value) < 1e-4, (ref, value)
      assert bool(is_greedy) == bool(all(int(rows[j].argmax()) == t for j, t in enumerate(choice)))


def test_scoring_rejects_bad_input(gpt2_pair):
  _, ours = gpt2_pair
  with pytest.raises(ValueError, match="no answer choices"):
    score_choices(ours, [[1, 2]], [[]])
  with pytest.raises(ValueError, match="empty context"):
    score_choices(ours, [[]], [[[1]]])
  with pytest.raises(ValueError, match="exceeds the model's 64 positions"):
    score_choices(ours, [[1] * 62], [[[1, 2, 3]]])
  encoder = Transformer(get_preset("tiny-bert"), task="base", rngs=nnx.Rngs(0))
  with pytest.raises(ValueError, match="decoder-only"):
    score_choices(encoder, [[1]], [[[1]]])


@pytest.fixture(scope="module")
def tiny_lm():
  tok = Tokenizer.from_file(minilm_dir())
  cfg = get_preset("tiny-gpt2", vocab_size=tok.vocab_size, d_model=32, n_layers=1, max_positions=96)
  return Transformer(cfg, task="lm", rngs=nnx.Rngs(0)), tok


def _examples(n, seed):
  rng = np.random.default_rng(seed)
  words = "good bad great awful fine dull".split()
  return [{"text": " ".join(rng.choice(words, 3)), "label": int(rng.integers(2))} for _ in range(n)]


TEMPLATE = PromptTemplate("Review: {text}\nSentiment:", verbalizers=("negative", "positive"))


def forward_logp(model, ids) -> np.ndarray:
  """log p(next token) [T,V] from one unpadded forward pass of `ids`, in float64."""
  logits = np.asarray(model(jnp.asarray([ids], jnp.int32))["logits"][0], np.float64)
  return logits - logits.max(-1, keepdims=True) - np.log(np.exp(logits - logits.max(-1, keepdims=True)).sum(-1,
                                                                                                    keepdims=True))


def reference_loglik(model, context, answer) -> float:
  logp = forward_logp(model, context + answer)
  return float(sum(logp[len(context) - 1 + j, t] for j, t in enumerate(answer)))


def test_fewshot_harness_metrics_and_k_limit(tiny_lm):
  tiny, tok = tiny_lm
  # A perturbed copy of the tiny model (its predictions then depend more on the input), answer texts of
  # different lengths (so length normalisation matters) and unbalanced gold labels (so a predictor stuck on
  # one label, or predicting the other label than it should, scores differently from the reference).
  model = Transformer(tiny.cfg, task="lm", rngs=nnx.Rngs(0))
  leaves, treedef = jax.tree.flatten(nnx.state(model, nnx.Param))
  keys = jax.random.split(jax.random.PRNGKey(0), len(leaves))
  nnx.update(model, jax.tree.unflatten(treedef, [w + 0.3 * jax.random.normal(k, w.shape, w.dtype)
                                                 for w, k in zip(leaves, keys)]))
  template = PromptTemplate("Review: {text}\nSentiment:", verbalizers=("bad", "excellent"))
  pool = _examples(12, 0)
  queries = [{**q, "label": y} for q, y in zip(_examples(8, 1), (1, 1, 0, 1, 1, 1, 0, 1))]
  out = evaluate_fewshot(model, tok, template, pool, queries,
                         options=FewShotOptions(ks=(0, 2), seeds=(0, 1), label_mode="flipped", add_bos=False))
  assert sorted(out["per_k"]) == [0, 2] and len(out["per_seed"][2]) == 2
  # k=0 by hand: plain text prompts, each choice scored by an unpadded forward pass.
  answers = [tok.encode(c, add_special_tokens=False) for c in template.choices()]
  ll = np.array([[reference_loglik(model, tok.encode(template.build([], q), add_special_tokens=False), a)
                  for a in answers] for q in queries])
  uncond = np.array([reference_loglik(model, tok.encode("Sentiment:", add_special_tokens=False), a)
                     for a in answers])
  gold = np.array([q["label"] for q in queries])
  lengths = np.array([len(c) for c in template.choices()], np.float64)
  k0 = out["per_k"][0]
  expected = {"acc": ll, "acc_norm": ll / lengths, "acc_mi": ll - uncond}
  for name, scores in expected.items():
    assert k0[name] == pytest.approx(np.mean(scores.argmax(-1) == gold), abs=1e-12), name
    assert np.mean(scores.argmax(-1) == gold) != np.mean(scores.argmin(-1) == gold)  # a flipped rule shows
  assert len({float(np.mean(v.argmax(-1) == gold)) for v in expected.values()}) == 3  # the three rules differ
  from sklearn.metrics import f1_score
  assert k0["macro_f1"] == pytest.approx(f1_score(gold, ll.argmax(-1), average="macro"), abs=1e-12)
  # Per-k numbers are the mean and (population) std over the per-seed rows.
  for k, row in out["per_k"].items():
    for name in ("acc", "acc_norm", "acc_mi", "acc_calibrated"):
      per_seed = [r[name] for r in out["per_seed"][k]]
      assert row[name] == pytest.approx(np.mean(per_seed)) and row[name + "_std"] == pytest.approx(np.std(per_seed))
  # With k=0 there are no demonstrations, so seeds cannot differ.
  assert out["per_k"][0]["acc_std"] == 0.0
  with pytest.raises(ValueError, match=r"k=12 demonstrations make a prompt of \d+ tokens.*only \d+ of these"):
    evaluate_fewshot(model, tok, TEMPLATE, pool, queries[:1], options=FewShotOptions(ks=(12,), calibrate=False))


@pytest.mark.slow  # over 20 s: keeps the default suite under 15 minutes on 2 cores
def test_generation_scored_fewshot(tiny_lm):
  model, tok = tiny_lm
  assert cut_at_stop("yes\nReview: more", ["\n", "Review"]) == "yes"
  template = PromptTemplate("Q: {text}\nA:", answer_field="answer")
  rows = [{"text": t, "answer": "yes"} for t in ("q0", "a much longer question one", "q two")]
  seen = {}

  def metric(preds, refs):
    seen.setdefault("preds", []).append(preds)
    seen["refs"] = refs
    return {"exact_match": float(np.mean([p == r for p, r in zip(preds, refs)]))}

  out = evaluate_fewshot(model, tok, template, rows, rows, metric_fn=metric,
                         options=FewShotOptions(ks=(0, 1), max_new_tokens=3, batch_size=4, add_bos=False))
  assert seen["refs"] == ["yes"] * 3 and all(isinstance(p, str) and "\n" not in p for p in seen["preds"][1])
  # k=0 by hand: greedy decoding with unpadded forward passes (the rows have different lengths, so the
  # harness's padded batch must not change the answers), cut at the stop sequence, stripped.
  expected = []
  for r in rows:
    ids = tok.encode(template.build([], r), add_special_tokens=False)
    new = []
    for _ in range(3):
      t = int(forward_logp(model, ids + new)[-1].argmax())
      if t == tok.eos_token_id:
        break
      new.append(t)
    expected.append(cut_at_stop(tok.decode(new), ["\n"]).strip())
  assert seen["preds"][0] == expected
  assert out["per_k"][0]["exact_match"] == float(np.mean([p == "yes" for p in expected]))
  assert out["per_k"][1]["exact_match"] == float(np.mean([p == "yes" for p in seen["preds"][1]]))


def test_run_icl_eval_writes_run_directory(tmp_path):
  import sys
  sys.path.insert(0, "configs")
  import icl_eval
  data = tmp_path / "data"
  data.mkdir()
  for split, n, seed in (("train", 10, 0), ("test", 4, 1)):
    (data / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in _examples(n, seed)))
  c = icl_eval.get_config("task=jsonl,k=0+1,model=tiny-gpt2,limit=4,labels=random")
  c.model.tokenizer = str(minilm_dir())
  c.model.overrides = {"d_model": 32, "n_layers": 1}
  c.task.options = {"path": {"train": str(data / "train.jsonl"), "test": str(data / "test.jsonl")},
                    "label_names": ["negative", "positive"]}
  results = run_icl_eval(c, tmp_path / "run")
  saved = json.loads((tmp_path / "run" / "results.json").read_text())
  assert saved["per_k"].keys() == {"0", "1"} == results["per_k"].keys() and saved["label_mode"] == "random"
  assert (tmp_path / "run" / "accuracy_vs_k.png").stat().st_size > 0
  assert len((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()) == 2
  c.prompt.choice_scored, c.prompt.verbalizers = True, ()
  c.task.options["kind"] = "regression"
  with pytest.raises(ValueError, match="no answer choices for a choice-scored eval"):
    run_icl_eval(c, tmp_path / "run2")
