"""The fast choice-scoring path on real SmolLM2 prompts against transformers: shared demonstration prefix,
length-sorted batches, one-token and multi-token answers."""

import numpy as np
import pytest
import torch
import transformers as T

from lightft_jax.icl.fewshot import PromptEncoder
from lightft_jax.icl.prompts import PromptTemplate
from lightft_jax.icl.scoring import bucket_length, common_prefix_length, pack_rows, score_choices
from lightft_jax.models import assets
from lightft_jax.models.hf import from_pretrained, load_tokenizer

TEMPLATE = PromptTemplate("Review: {text}\nSentiment:", verbalizers=("negative", "positive"))
DEMOS = [{"text": "A gorgeous, witty, seductive movie.", "label": 1},
         {"text": "The plot is nothing but boilerplate cliches from start to finish.", "label": 0}]
QUERIES = [{"text": t} for t in (
    "Dull.",
    "An exhilarating experience from a director at the top of his game, with performances that stay with you.",
    "It's technically sumptuous but also almost wildly alive.",
    "Too long, too loud and far too pleased with itself.",
    "Charming.",
)]


@pytest.fixture(scope="module")
def smollm():
  path = assets.smollm2_gguf()
  tok = load_tokenizer(path)
  ours = from_pretrained(path, task="lm")
  hf = T.AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=torch.float32).eval()
  return tok, ours, hf


def _reference(hf, ctx, choice):
  with torch.no_grad():
    logp = torch.log_softmax(hf(torch.tensor([ctx + choice])).logits[0].double(), -1)
  return float(sum(logp[len(ctx) - 1 + j, t] for j, t in enumerate(choice)))


def _check(hf, contexts, choices, ll):
  for ctx, chs, got in zip(contexts, choices, ll):
    assert got.shape == (len(chs),)
    for choice, value in zip(chs, got):
      ref = _reference(hf, ctx, choice)
      assert abs(ref - value) < 1e-4, (ref, value)


@pytest.mark.parametrize("k", [0, pytest.param(2, marks=pytest.mark.slow)])  # k > 0: also the multi-token test
def test_one_token_answers_match_transformers(smollm, k):
  tok, ours, hf = smollm
  enc = PromptEncoder(tok)
  contexts = [enc.context(TEMPLATE.build(DEMOS[:k], q)) for q in QUERIES]
  answers = [enc.answer(a) for a in TEMPLATE.choices()]
  assert all(len(a) == 1 for a in answers)  # " negative" / " positive" are single SmolLM2 tokens
  if k:
    assert common_prefix_length(contexts) >= 16  # the demonstrations run once into the shared cache
  ll, greedy = score_choices(ours, contexts, [answers] * len(contexts), batch_size=2)
  _check(hf, contexts, [answers] * len(contexts), ll)
  assert all(g.sum() <= 1 for g in greedy)


def test_benchmark_transformers_recipes_match_one_prompt_at_a_time(smollm):
  """The speed benchmark's transformers side (experiments/benchmarks/icl_fewshot.py): the plain recipe (sorted,
  right-padded batches, next-token log-probs at each row's last real token) and the one with a shared prefix
  cache ("Review:" here) give every prompt's answer log-probs as one unpadded forward pass per prompt does, rows
  in input order."""
  from experiments.benchmarks.icl_fewshot import hf_plain, hf_prefix_cache
  from lightft_jax.icl.scoring import common_prefix_length
  tok, _, hf = smollm
  enc = PromptEncoder(tok)
  answers = [enc.answer(a)[0] for a in TEMPLATE.choices()]  # one token each
  contexts = [enc.context(TEMPLATE.build([], q)) for q in QUERIES]
  assert len(set(map(len, contexts))) > 1 and common_prefix_length(contexts) >= 1  # batches pad; a prefix to cache
  with torch.no_grad():
    ref = np.array([torch.log_softmax(hf(torch.tensor([c])).logits[0, -1].double(), -1)[answers].numpy()
                    for c in contexts])
  for recipe in (hf_plain, hf_prefix_cache):
    got = recipe(hf, contexts, [[a] for a in answers], 2, tok.pad_token_id)
    np.testing.assert_allclose(got, ref, atol=1e-4, rtol=0)


@pytest.mark.slow  # over 20 s: keeps the default suite under 15 minutes on 2 cores
def test_multi_token_answers_after_shared_prefix_match_transformers(smollm):
  tok, ours, hf = smollm
  enc = PromptEncoder(tok)
  contexts = [enc.context(TEMPLATE.build(DEMOS, q)) for q in QUERIES[:4]]
  answers = [enc.answer(a) for a in (" positive", " not good", " a masterpiece, truly")]
  assert len({len(a) for a in answers}) == 3, answers
  ll, greedy = score_choices(ours, contexts, [answers] * 4, batch_size=3)
  _check(hf, contexts, [answers] * 4, ll)
  # Without the shared cache (min_prefix above every context) the scores are the same.
  ll_plain, greedy_plain = score_choices(ours, contexts, [answers] * 4, batch_size=3, min_prefix=10**6)
  np.testing.assert_allclose(np.stack(ll), np.stack(ll_plain), atol=1e-4)
  np.testing.assert_array_equal(np.stack(greedy), np.stack(greedy_plain))


def test_common_prefix_and_buckets():
  assert common_prefix_length([[1, 2, 3, 4], [1, 2, 5], [1, 2, 3]]) == 2
  assert common_prefix_length([[7], [8, 9]]) == 0
  for n in range(1, 600):
    b = bucket_length(n)
    assert n <= b <= n + (7 if n <= 64 else 15 if n <= 256 else 31), (n, b)
  assert len({bucket_length(n) for n in range(1, 129)}) == 12  # few compiled shapes


def _tiny_lm(preset):
  from flax import nnx
  from lightft_jax.models import Transformer, get_preset
  cfg = get_preset(preset, vocab_size=97, d_model=32, n_layers=2, max_positions=256)
  return Transformer(cfg, task="lm", rngs=nnx.Rngs(0))


@pytest.mark.parametrize("preset", ["tiny-gpt2", "tiny-llama"])
def test_generate_from_prefix_cache_equals_full_prompt(preset):
  """generate(prefix=prefix_cache(...)) continues exactly as generating from prefix + prompt (learned
  positions and RoPE), with the prefix cache padded to more slots than it has tokens."""
  from lightft_jax.models.generate import generate, prefix_cache
  model = _tiny_lm(preset)
  rng = np.random.default_rng(0)
  prefix = list(rng.integers(3, 97, 21))
  prompts = [list(rng.integers(3, 97, n)) for n in (5, 9, 2)]
  t = max(map(len, prompts))
  ids, mask = np.zeros((3, t), np.int32), np.zeros((3, t), np.int32)
  full_ids, full_mask = np.zeros((3, t + 21), np.int32), np.zeros((3, t + 21), np.int32)
  for r, x in enumerate(prompts):
    ids[r, t - len(x):], mask[r, t - len(x):] = x, 1
    full_ids[r, t + 21 - len(x) - 21:], full_mask[r, t - len(x):] = prefix + x, 1
  cache = prefix_cache(model, prefix, slots=32)
  got, got_logits = generate(model, ids, mask, max_new_tokens=6, prefix=cache, return_logits=True)
  ref, ref_logits = generate(model, full_ids, full_mask, max_new_tokens=6, return_logits=True)
  np.testing.assert_array_equal(np.asarray(got), np.asarray(ref))
  np.testing.assert_allclose(np.asarray(got_logits), np.asarray(ref_logits), atol=1e-4)


def test_generated_answers_with_shared_prefix_equal_plain_ones():
  from lightft_jax.icl.generation import generate_answers
  from lightft_jax.models.assets import minilm_dir
  from lightft_jax.models.tokenizer import Tokenizer
  tok = Tokenizer.from_file(minilm_dir())
  from flax import nnx
  from lightft_jax.models import Transformer, get_preset
  model = Transformer(get_preset("tiny-llama", vocab_size=tok.vocab_size, d_model=32, n_layers=1,
                                 max_positions=128), task="lm", rngs=nnx.Rngs(1))
  demos = "Q: one\nA: 1\n\nQ: two\nA: 2\n\nQ: three\nA: 3\n\n"
  contexts = [tok.encode(demos + f"Q: {w}\nA:", add_special_tokens=False) for w in ("four", "five six", "x")]
  assert common_prefix_length(contexts) >= 16
  kw = dict(stop_sequences=("\n",), max_new_tokens=4, batch_size=2)
  assert generate_answers(model, tok, contexts, **kw) == generate_answers(model, tok, contexts, min_prefix=10**6,
                                                                          **kw)


def test_pack_rows_fills_rows_without_overflow():
  rng = np.random.default_rng(0)
  lengths = list(rng.integers(1, 40, 200))
  rows = pack_rows(lengths, 64)
  assert sorted(i for r in rows for i in r) == list(range(200))
  assert all(sum(lengths[i] for i in r) <= 64 for r in rows)
  assert len(rows) <= -(-sum(lengths) // 64) + 2  # best-fit decreasing is close to the bound here


@pytest.mark.parametrize("preset", ["tiny-gpt2", "tiny-llama"])
def test_packed_rows_score_as_padded_batches(preset):
  """Prompts packed end to end into rows (segment mask, positions restarting per prompt; learned positions
  and RoPE) score as the padded batches do, over several calls of different row counts."""
  model = _tiny_lm(preset)
  rng = np.random.default_rng(1)
  contexts = [list(rng.integers(3, 97, n)) for n in rng.integers(1, 30, 23)]
  choices = [[[int(t)] for t in rng.integers(3, 97, c)] for c in rng.integers(1, 4, 23)]
  kw = dict(batch_size=4, min_prefix=10**6)
  ll, greedy = score_choices(model, contexts, choices, token_budget=64, max_row_len=48, **kw)
  ref_ll, ref_greedy = score_choices(model, contexts, choices, pack=False, **kw)
  for a, b, g, h in zip(ll, ref_ll, greedy, ref_greedy):
    np.testing.assert_allclose(a, b, atol=1e-5)
    np.testing.assert_array_equal(g, h)


@pytest.mark.parametrize("preset", ["tiny-gpt2", "tiny-llama"])
def test_packed_rows_after_a_shared_prefix_score_as_padded_batches(preset):
  """Queries packed into rows after a shared prefix's cache (every segment sees the prefix slots, positions
  continue after it) score as the padded batches after the same cache, and as packing without the cache."""
  model = _tiny_lm(preset)
  rng = np.random.default_rng(2)
  prefix = list(rng.integers(3, 97, 19))
  contexts = [prefix + list(rng.integers(3, 97, n)) for n in rng.integers(1, 30, 17)]
  choices = [[[int(t)] for t in rng.integers(3, 97, c)] for c in rng.integers(1, 4, 17)]
  assert common_prefix_length(contexts) >= 19
  packed = score_choices(model, contexts, choices, token_budget=64, max_row_len=48, min_prefix=16, prefix_bucket=8)
  batches = score_choices(model, contexts, choices, batch_size=4, pack=False, min_prefix=16, prefix_bucket=8)
  no_cache = score_choices(model, contexts, choices, token_budget=64, max_row_len=64, min_prefix=10**6)
  for ref in (batches, no_cache):
    for a, b in zip(packed[0], ref[0]):
      np.testing.assert_allclose(a, b, atol=1e-5)
    for g, h in zip(packed[1], ref[1]):
      np.testing.assert_array_equal(g, h)
