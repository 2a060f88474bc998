"""KV-cache generation: parity with the uncached forward, batching, stop tokens, sampling, HF parity."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from lightft_jax.models import Transformer, generate, get_preset
from lightft_jax.models.generate import filter_logits, sample_next

# Decoder prompts of lengths 5 and 2 (left-padded in a batch).
PROMPTS = [[3, 4, 5, 6, 7], [9, 10]]
N_NEW = 6


def left_pad(rows, pad=0):
  t = max(map(len, rows))
  ids = np.array([[pad] * (t - len(r)) + r for r in rows], np.int32)
  mask = np.array([[0] * (t - len(r)) + [1] * len(r) for r in rows], np.int32)
  return ids, mask


def right_pad(rows, pad=0):
  t = max(map(len, rows))
  ids = np.array([r + [pad] * (t - len(r)) for r in rows], np.int32)
  mask = np.array([[1] * len(r) + [0] * (t - len(r)) for r in rows], np.int32)
  return ids, mask


def tiny_lm(name):
  """Weights 10x the default init scale, so attention is peaked and token choices depend on positions."""
  return Transformer(get_preset(name, initializer_range=0.2), task="lm", rngs=nnx.Rngs(0))


@pytest.fixture(scope="module")
def models():
  """Tiny lm models by preset name, built once for the module."""
  return {name: tiny_lm(name) for name in ("tiny-gpt2", "tiny-llama", "tiny-t5")}


@nnx.jit
def full_forward_logits(model, ids, mask, tokens):
  """Uncached logits [B,N,V] that chose each generated token, from one forward on the whole sequence."""
  if model.cfg.arch == "decoder":
    seq = jnp.concatenate([ids, tokens], 1)
    seq_mask = jnp.concatenate([mask, jnp.ones_like(tokens)], 1)
    return model(seq, seq_mask)["logits"][:, ids.shape[1] - 1:-1]
  start = jnp.full((ids.shape[0], 1), model.cfg.decoder_start_token_id, jnp.int32)
  dec = jnp.concatenate([start, tokens[:, :-1]], 1)
  return model(ids, mask, decoder_input_ids=dec)["logits"]


@pytest.mark.parametrize("name", ["tiny-gpt2", "tiny-llama", "tiny-t5"])
def test_cached_steps_equal_full_forward(models, name):
  model = models[name]
  ids, mask = right_pad(PROMPTS) if name == "tiny-t5" else left_pad(PROMPTS)  # encoders take any padding
  tokens, logits = generate(model, ids, mask, max_new_tokens=N_NEW, return_logits=True)
  assert tokens.shape == (2, N_NEW) and tokens.dtype == jnp.int32
  ref = full_forward_logits(model, jnp.asarray(ids), jnp.asarray(mask), tokens)
  np.testing.assert_allclose(logits, ref, atol=1e-5, rtol=0)
  np.testing.assert_array_equal(tokens, jnp.argmax(ref, -1))


@pytest.mark.parametrize("name", [pytest.param("tiny-gpt2", marks=pytest.mark.slow), "tiny-llama"])
def test_batched_left_padded_equals_rows_alone(models, name):
  model = models[name]
  ids, mask = left_pad(PROMPTS)
  batched = generate(model, ids, mask, max_new_tokens=N_NEW)
  for i, row in enumerate(PROMPTS):
    alone = generate(model, np.array([row], np.int32), max_new_tokens=N_NEW)
    np.testing.assert_array_equal(batched[i], alone[0], err_msg=f"row {i}")


@pytest.mark.parametrize("name", ["tiny-gpt2", pytest.param("tiny-t5", marks=pytest.mark.slow)])
def test_soft_prompt_generation_matches_full_forward(models, name):
  """Prompt tuning: generation puts the soft prompt before the prompt (encoder input) as __call__ does."""
  from lightft_jax import peft

  model = peft.apply(tiny_lm(name),
                     {"method": "prompt", "num_tokens": 3}, rngs=nnx.Rngs(1))
  ids, mask = right_pad(PROMPTS) if name == "tiny-t5" else left_pad(PROMPTS)
  tokens, logits = generate(model, ids, mask, max_new_tokens=N_NEW, return_logits=True)
  ref = full_forward_logits(model, jnp.asarray(ids), jnp.asarray(mask), tokens)
  np.testing.assert_allclose(logits, ref, atol=1e-5, rtol=0)
  _, plain_logits = generate(models[name], ids, mask, max_new_tokens=N_NEW, return_logits=True)
  assert np.abs(np.asarray(plain_logits[:, 0] - logits[:, 0])).max() > 1e-3  # the soft prompt matters


@pytest.mark.slow
def test_t5_batched_padded_equals_rows_alone(models):
  model = models["tiny-t5"]
  ids, mask = right_pad(PROMPTS)
  batched = generate(model, ids, mask, max_new_tokens=N_NEW)
  for i, row in enumerate(PROMPTS):
    alone = generate(model, np.array([row], np.int32), max_new_tokens=N_NEW)
    np.testing.assert_array_equal(batched[i], alone[0], err_msg=f"row {i}")


def test_stop_tokens_stop_rows_and_pad_after(models):
  model = models["tiny-llama"]
  ids, mask = left_pad(PROMPTS)
  free = np.asarray(generate(model, ids, mask, max_new_tokens=N_NEW))
  stop = int(free[0, 1])  # row 0 emits this at step 1
  assert free[1, 1] != stop  # so row 1 goes on after row 0 stopped
  pad = 999
  out = np.asarray(generate(model, ids, mask, max_new_tokens=N_NEW, stop_tokens=(stop,), pad_token_id=pad))
  for i in range(len(PROMPTS)):
    hits = np.flatnonzero(free[i] == stop)
    end = hits[0] + 1 if hits.size else N_NEW
    np.testing.assert_array_equal(out[i, :end], free[i, :end])
    assert (out[i, end:] == pad).all(), (i, out[i])


def test_loop_exits_early_when_all_rows_stop(models):
  model = models["tiny-gpt2"]
  ids, mask = left_pad(PROMPTS)
  free = np.asarray(generate(model, ids, mask, max_new_tokens=N_NEW))
  stops = tuple(int(s) for s in free[:, 0])  # every row stops at its first token
  out, logits = generate(model, ids, mask, max_new_tokens=N_NEW, stop_tokens=stops, pad_token_id=999,
                         return_logits=True)
  np.testing.assert_array_equal(out[:, 0], free[:, 0])
  assert (np.asarray(out[:, 1:]) == 999).all()
  assert np.asarray(logits[:, 0]).any() and not np.asarray(logits[:, 1:]).any()


def test_sampling_reproducible_and_top_k1_is_greedy(models):
  model = models["tiny-gpt2"]
  ids, mask = left_pad(PROMPTS)
  kw = dict(max_new_tokens=N_NEW, temperature=2.0)
  a = generate(model, ids, mask, rng=jax.random.key(1), **kw)
  b = generate(model, ids, mask, rng=jax.random.key(1), **kw)
  c = generate(model, ids, mask, rng=jax.random.key(2), **kw)
  np.testing.assert_array_equal(a, b)
  assert not np.array_equal(a, c)  # 18 draws from a near-uniform 1024-way distribution
  greedy = generate(model, ids, mask, max_new_tokens=N_NEW)
  np.testing.assert_array_equal(generate(model, ids, mask, rng=jax.random.key(3), top_k=1, **kw), greedy)
  np.testing.assert_array_equal(generate(model, ids, mask, rng=jax.random.key(3), top_p=1e-6, **kw), greedy)


jit_filter = jax.jit(filter_logits)

# Hand-built distribution over 6 tokens, most likely first: 3 (.5), 0 (.3), 5 (.1), 1 (.06), 4 (.03), 2 (.01).
PROBS = np.array([0.3, 0.06, 0.01, 0.5, 0.03, 0.1])


@pytest.mark.parametrize("top_p, nucleus", [(0.4, {3}), (0.75, {3, 0}), (0.85, {3, 0, 5}), (0.95, {3, 0, 5, 1}),
                                            (1.0, {0, 1, 2, 3, 4, 5})])
def test_top_p_keeps_the_nucleus(top_p, nucleus):
  logits = jnp.log(jnp.asarray(np.stack([PROBS, PROBS[::-1]]), jnp.float32))
  filtered = np.asarray(jit_filter(logits, 0, top_p))
  kept = np.isfinite(filtered)
  assert set(np.flatnonzero(kept[0])) == nucleus
  assert set(np.flatnonzero(kept[1])) == {5 - i for i in nucleus}  # same nucleus, reversed vocab order
  np.testing.assert_array_equal(filtered[kept], np.asarray(logits)[kept])


def test_top_k_and_top_p_combine():
  logits = jnp.log(jnp.asarray(np.stack([PROBS] * 2), jnp.float32))
  kept = lambda top_k, top_p: set(np.flatnonzero(np.isfinite(jit_filter(logits, top_k, top_p)[0])))
  assert kept(2, 1.0) == {3, 0}
  assert kept(4, 0.85) == {3, 0, 5}  # top-p on the top-4 renormalised: 0.8 / 0.96 < 0.85 <= 0.9 / 0.96
  assert kept(1, 0.95) == {3}
  assert kept(6, 1.0) == kept(0, 1.0) == set(range(6))


def test_sampling_frequencies_follow_the_renormalised_nucleus():
  logits = jnp.log(jnp.broadcast_to(jnp.asarray(PROBS, jnp.float32), (20000, 6)))
  draws = np.asarray(jax.jit(sample_next)(logits, jax.random.key(0), temperature=1.0, top_k=0, top_p=0.85))
  freq = np.bincount(draws, minlength=6) / draws.size
  expected = np.where(np.isin(np.arange(6), [3, 0, 5]), PROBS, 0) / 0.9
  np.testing.assert_allclose(freq, expected, atol=0.015)  # 4.5 sigma at n=20000


def test_bad_arguments_raise_clear_errors(models):
  model = models["tiny-gpt2"]
  ids, mask = left_pad(PROMPTS)
  with pytest.raises(ValueError, match="LEFT-padded"):
    generate(model, *right_pad(PROMPTS), max_new_tokens=2)
  with pytest.raises(ValueError, match="max_positions"):
    generate(model, ids, mask, max_new_tokens=200)
  with pytest.raises(ValueError, match="rng"):
    generate(model, ids, mask, max_new_tokens=2, temperature=1.0)
  with pytest.raises(ValueError, match="top_p"):
    generate(model, ids, mask, max_new_tokens=2, temperature=1.0, top_p=0.0, rng=jax.random.key(0))
  with pytest.raises(ValueError, match="max_new_tokens"):
    generate(model, ids, mask, max_new_tokens=0)
  encoder = Transformer(get_preset("tiny-bert"), task="base", rngs=nnx.Rngs(0))
  with pytest.raises(ValueError, match="task='lm'"):
    generate(encoder, ids, mask, max_new_tokens=2)


# ----------------------------------------------------------------------------- transformers parity

def _hf_gpt2():
  import transformers
  cfg = transformers.GPT2Config(vocab_size=96, n_positions=64, n_embd=32, n_layer=2, n_head=4, n_inner=64,
                                initializer_range=0.2)
  return transformers.GPT2LMHeadModel(cfg)


def _hf_llama():
  import transformers
  cfg = transformers.LlamaConfig(vocab_size=96, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                 num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
                                 initializer_range=0.2, tie_word_embeddings=False)
  return transformers.LlamaForCausalLM(cfg)


@pytest.mark.parametrize("build", [_hf_gpt2, _hf_llama], ids=["gpt2", "llama"])
def test_greedy_matches_transformers_generate(build, tmp_path):
  torch = pytest.importorskip("torch")
  from lightft_jax.models import from_pretrained

  torch.manual_seed(0)
  hf = build().eval()
  hf.generation_config.eos_token_id = None  # generate exactly max_new_tokens
  hf.generation_config.pad_token_id = 0
  hf.save_pretrained(tmp_path)
  ids, mask = left_pad([[5, 17, 33, 2, 8], [40, 41, 7]])
  with torch.no_grad():
    ref = hf.generate(torch.tensor(ids, dtype=torch.long), attention_mask=torch.tensor(mask), do_sample=False,
                      max_new_tokens=20, pad_token_id=0)[:, ids.shape[1]:].numpy()
  model = from_pretrained(str(tmp_path), task="lm")
  out = np.asarray(generate(model, ids, mask, max_new_tokens=20))
  np.testing.assert_array_equal(out, ref)
