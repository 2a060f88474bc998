"""Real weights, offline: all-MiniLM-L6-v2 (BERT, safetensors) and SmolLM2-135M-Instruct (llama, Q4_1 GGUF)."""

import numpy as np
import pytest
import torch
import transformers as T

from lightft_jax.models import assets, from_pretrained, load_tokenizer
from lightft_jax.models.gguf import unpermute_rope

SENTENCES = ["A man is playing a guitar on the street.",
             "The quick brown fox jumps over the lazy dog!",
             "Transformers can be fine-tuned with only a few thousand parameters.",
             "naïve café, 1234 — déjà vu?"]
PROMPT = "The capital of France is"


# ------------------------------------------------------------------------------------------ MiniLM (BERT)

@pytest.fixture(scope="module")
def minilm():
  path = assets.minilm_dir()
  return path, load_tokenizer(path), from_pretrained(path)


def test_minilm_tokenizer_ids_match_transformers(minilm):
  path, tok, _ = minilm
  ref = T.AutoTokenizer.from_pretrained(path)(SENTENCES, padding=True, return_tensors="np")
  ours = tok.encode_batch(SENTENCES)
  np.testing.assert_array_equal(ours["input_ids"], ref["input_ids"])
  np.testing.assert_array_equal(ours["attention_mask"], ref["attention_mask"])


def test_minilm_hidden_states_match_transformers(minilm):
  path, tok, model = minilm
  batch = tok.encode_batch(SENTENCES)
  hf = T.AutoModel.from_pretrained(path).eval()
  with torch.no_grad():
    ref = hf(input_ids=torch.tensor(batch["input_ids"]).long(),
             attention_mask=torch.tensor(batch["attention_mask"]).long()).last_hidden_state.numpy()
  ours = np.asarray(model(batch["input_ids"], batch["attention_mask"])["hidden_states"])
  real = batch["attention_mask"].astype(bool)
  assert real.sum() < real.size  # the batch really is padded
  np.testing.assert_allclose(ours[real], ref[real], atol=1e-4, rtol=0)


# ------------------------------------------------------------------------------------------ SmolLM2 (GGUF)

def test_unpermute_rope_inverts_llama_cpp_permutation():
  """llama.cpp's convert script permutes q/k rows as below; unpermute_rope must undo it exactly."""
  def permute(w, n_head):  # convert_hf_to_gguf.py LlamaModel.permute
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)

  w = np.random.RandomState(0).randn(3 * 8, 5)
  np.testing.assert_array_equal(unpermute_rope(permute(w, 3), 3), w)
  assert not np.array_equal(permute(w, 3), w)


@pytest.fixture(scope="module")
def smollm():
  path = assets.smollm2_gguf()
  tok = load_tokenizer(path)
  model = from_pretrained(path, task="lm")
  ids = np.array([tok.encode(PROMPT)], np.int32)
  return path, tok, model, ids, np.asarray(model(ids)["logits"])


def test_smollm_config_from_gguf_metadata(smollm):
  cfg = smollm[2].cfg
  assert (cfg.n_layers, cfg.d_model, cfg.n_heads, cfg.num_kv_heads, cfg.d_ff) == (30, 576, 9, 3, 1536)
  assert cfg.tie_embeddings and cfg.rope_theta == 100000.0 and cfg.vocab_size == 49152


def test_smollm_tokenizer_ids_match_transformers_gguf_tokenizer(smollm):
  path, tok = smollm[:2]
  ref = T.AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
  for text in SENTENCES + [PROMPT, "<|im_start|>user\nHi there<|im_end|>\n", "  two  spaces\tand\nlines"]:
    assert tok.encode(text) == ref(text)["input_ids"], text
  assert tok.decode(tok.encode(SENTENCES[3])) == SENTENCES[3]


def test_smollm_greedy_next_token_is_paris(smollm):
  tok, logits = smollm[1], smollm[4]
  assert tok.decode([int(logits[0, -1].argmax())]) == " Paris"


def test_smollm_logits_match_transformers_gguf(smollm):
  path, _, _, ids, logits = smollm
  hf = T.AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=torch.float32).eval()
  with torch.no_grad():
    ref = hf(torch.tensor(ids).long()).logits.numpy()
  np.testing.assert_allclose(logits, ref, atol=1e-3, rtol=0)
