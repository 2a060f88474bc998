"""Parity with `transformers`: tiny random HF models saved to safetensors, loaded here, same outputs.

Every HF parameter (biases and norm scales included) is perturbed away from its init so a wrong
mapping cannot hide behind zeros and ones. Padded positions are excluded from comparisons.
"""

import json
import logging

import jax.numpy as jnp
import numpy as np
import pytest
import torch
import transformers as T
from safetensors.torch import load_file, save_file

from lightft_jax.models import from_pretrained, save_pretrained

ATOL = 1e-4
VOCAB = 97


def _perturb(model, seed=0):
  g = torch.Generator().manual_seed(seed)
  with torch.no_grad():
    for p in model.parameters():
      p.add_(0.1 * torch.randn(p.shape, generator=g))
  return model.eval()


def _hf(cls, config, path, seed=0):
  torch.manual_seed(seed)
  model = _perturb(cls(config), seed)
  model.save_pretrained(path, safe_serialization=True)
  return model


def _batch(seed=0, b=3, t=9):
  """Random ids >= 2 (clear of pad/bos ids), right padding of different lengths."""
  rs = np.random.RandomState(seed)
  ids = rs.randint(2, VOCAB, (b, t))
  mask = np.ones((b, t), np.int64)
  mask[1, 6:] = 0
  mask[2, 3:] = 0
  return ids, mask


def _run(model, ids, mask, **extra):
  """Forward without jit: op-by-op kernels are cached across tests, a jitted model would recompile each time."""
  return model(input_ids=ids, attention_mask=mask, **extra)


def _torch(**arrays):
  return {k: torch.tensor(v) for k, v in arrays.items()}


def _close(ours, ref, mask):
  ours, real = np.asarray(ours), mask.astype(bool)
  assert ours.shape == ref.shape
  np.testing.assert_allclose(ours[real], ref[real], atol=ATOL, rtol=0)


def _bert_cfg(**kw):
  return T.BertConfig(vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                      intermediate_size=48, max_position_embeddings=40, **kw)


def _roberta_cfg(**kw):
  return T.RobertaConfig(vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                         intermediate_size=48, max_position_embeddings=42, pad_token_id=1, **kw)


def _gpt2_cfg(**kw):
  return T.GPT2Config(vocab_size=VOCAB, n_embd=32, n_layer=2, n_head=4, n_positions=40, pad_token_id=0,
                      bos_token_id=1, eos_token_id=1, **kw)


def _llama_cfg(**kw):
  return T.LlamaConfig(vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                       num_key_value_heads=2, intermediate_size=40, max_position_embeddings=40, rope_theta=500.0,
                       tie_word_embeddings=False, pad_token_id=0, bos_token_id=1, eos_token_id=1, **kw)


def _mistral_cfg(**kw):
  """Sliding window of 4 slots over sequences of 9: later queries must not see the first tokens."""
  return T.MistralConfig(vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                         num_key_value_heads=2, intermediate_size=40, max_position_embeddings=40, rope_theta=500.0,
                         sliding_window=4, pad_token_id=0, bos_token_id=1, eos_token_id=1, **kw)


def _t5_cfg(proj, **kw):
  return T.T5Config(vocab_size=VOCAB, d_model=32, d_kv=8, d_ff=40, num_layers=2, num_decoder_layers=3, num_heads=4,
                    relative_attention_num_buckets=8, relative_attention_max_distance=20, feed_forward_proj=proj,
                    **kw)


# ------------------------------------------------------------------------------------------ encoders

def test_bert_hidden_states_with_token_types(tmp_path):
  hf = _hf(T.BertModel, _bert_cfg(), tmp_path)
  ids, mask = _batch()
  tt = np.zeros_like(ids)
  tt[:, 4:] = 1
  with torch.no_grad():
    ref = hf(**_torch(input_ids=ids, attention_mask=mask, token_type_ids=tt))
  out = _run(from_pretrained(tmp_path), ids, mask, token_type_ids=tt)
  _close(out["hidden_states"], ref.last_hidden_state.numpy(), mask)
  np.testing.assert_allclose(np.asarray(out["pooled"]), ref.pooler_output.numpy(), atol=ATOL)


def test_roberta_hidden_states(tmp_path):
  hf = _hf(T.RobertaModel, _roberta_cfg(), tmp_path)
  ids, mask = _batch(1)
  ids = np.where(mask == 1, ids, 1)  # HF RoBERTa derives positions from pad ids
  with torch.no_grad():
    ref = hf(**_torch(input_ids=ids, attention_mask=mask)).last_hidden_state.numpy()
  _close(_run(from_pretrained(tmp_path), ids, mask)["hidden_states"], ref, mask)


@pytest.mark.parametrize("arch", ["bert", "roberta"])
def test_encoder_sequence_classification(tmp_path, arch):
  cfg, cls = {"bert": (_bert_cfg, T.BertForSequenceClassification),
              "roberta": (_roberta_cfg, T.RobertaForSequenceClassification)}[arch]
  hf = _hf(cls, cfg(num_labels=3), tmp_path)
  ids, mask = _batch(2)
  ids = np.where(mask == 1, ids, hf.config.pad_token_id)
  with torch.no_grad():
    ref = hf(**_torch(input_ids=ids, attention_mask=mask)).logits.numpy()
  model = from_pretrained(tmp_path, task="classification")  # num_labels read from config.json
  np.testing.assert_allclose(np.asarray(_run(model, ids, mask)["logits"]), ref, atol=ATOL)


def test_bert_token_classification(tmp_path):
  hf = _hf(T.BertForTokenClassification, _bert_cfg(num_labels=5), tmp_path)
  ids, mask = _batch(3)
  with torch.no_grad():
    ref = hf(**_torch(input_ids=ids, attention_mask=mask)).logits.numpy()
  _close(_run(from_pretrained(tmp_path, task="token_classification"), ids, mask)["logits"], ref, mask)


# ------------------------------------------------------------------------------------------ decoders

def test_gpt2_lm_logits(tmp_path):
  hf = _hf(T.GPT2LMHeadModel, _gpt2_cfg(), tmp_path)
  ids, mask = _batch(4)
  with torch.no_grad():
    ref = hf(**_torch(input_ids=ids, attention_mask=mask)).logits.numpy()
  _close(_run(from_pretrained(tmp_path, task="lm"), ids, mask)["logits"], ref, mask)


def test_gpt2_sequence_classification(tmp_path):
  hf = _hf(T.GPT2ForSequenceClassification, _gpt2_cfg(num_labels=3), tmp_path)
  ids, mask = _batch(5)
  ids = np.where(mask == 1, ids, 0)
  with torch.no_grad():
    ref = hf(**_torch(input_ids=ids, attention_mask=mask)).logits.numpy()
  out = _run(from_pretrained(tmp_path, task="classification"), ids, mask)["logits"]
  np.testing.assert_allclose(np.asarray(out), ref, atol=ATOL)


def test_gpt2_question_answering(tmp_path):
  hf = _hf(T.GPT2ForQuestionAnswering, _gpt2_cfg(), tmp_path)
  ids, mask = _batch(6)
  with torch.no_grad():
    ref = hf(**_torch(input_ids=ids, attention_mask=mask))
  ref = np.stack([ref.start_logits.numpy(), ref.end_logits.numpy()], -1)
  _close(_run(from_pretrained(tmp_path, task="qa"), ids, mask)["logits"], ref, mask)


def test_llama_gqa_lm_logits(tmp_path):
  hf = _hf(T.LlamaForCausalLM, _llama_cfg(), tmp_path)
  ids, mask = _batch(7)
  with torch.no_grad():
    ref = hf(**_torch(input_ids=ids, attention_mask=mask)).logits.numpy()
  model = from_pretrained(tmp_path, task="lm")
  assert model.cfg.num_kv_heads == 2 and model.cfg.rope_theta == 500.0 and not model.cfg.tie_embeddings
  _close(_run(model, ids, mask)["logits"], ref, mask)


def test_mistral_sliding_window_lm_logits(tmp_path):
  hf = _hf(T.MistralForCausalLM, _mistral_cfg(), tmp_path)
  ids, mask = _batch(17)
  with torch.no_grad():
    ref = hf(**_torch(input_ids=ids, attention_mask=mask)).logits.numpy()
  model = from_pretrained(tmp_path, task="lm")
  assert model.cfg.model_type == "mistral" and model.cfg.sliding_window == 4 and model.cfg.num_kv_heads == 2
  _close(_run(model, ids, mask)["logits"], ref, mask)
  # the window matters: full causal attention gives other logits from the fifth token on
  full = np.asarray(_run(from_pretrained(tmp_path, task="lm", sliding_window=None), ids, mask)["logits"])
  assert np.abs(full[0, 4:] - ref[0, 4:]).max() > 100 * ATOL
  np.testing.assert_allclose(full[0, :4], ref[0, :4], atol=ATOL)


def test_mistral_sliding_window_kv_cache_matches_full_forward(tmp_path):
  """Token-by-token decoding through the KV cache applies the same window as one full forward."""
  _hf(T.MistralForCausalLM, _mistral_cfg(), tmp_path)
  model = from_pretrained(tmp_path, task="lm")
  ids = np.random.RandomState(18).randint(2, VOCAB, (2, 9))
  full = np.asarray(_run(model, ids, np.ones_like(ids))["logits"])
  cache = model.init_cache(2, 9)
  steps = []
  for i in range(9):
    out = model(input_ids=ids[:, i:i + 1], attention_mask=np.ones((2, 9), np.int32), cache=cache)
    cache = out["cache"]
    steps.append(np.asarray(out["logits"])[:, 0])
  np.testing.assert_allclose(np.stack(steps, 1), full, atol=1e-5)


# ------------------------------------------------------------------------------------------ T5

def _t5_inputs(seed=8):
  ids, mask = _batch(seed)
  dec = np.random.RandomState(seed + 1).randint(2, VOCAB, (3, 5))
  return ids, mask, dec


def _t5_ref(hf, ids, mask, dec):
  with torch.no_grad():
    return hf(**_torch(input_ids=ids, attention_mask=mask, decoder_input_ids=dec)).logits.numpy()


def test_t5_v1_0_tied_scaled_logits(tmp_path):
  hf = _hf(T.T5ForConditionalGeneration, _t5_cfg("relu"), tmp_path)
  ids, mask, dec = _t5_inputs()
  model = from_pretrained(tmp_path, task="lm")
  assert model.cfg.tie_embeddings and model.cfg.scale_tied_logits and not model.cfg.gated_mlp
  logits = _run(model, ids, mask, decoder_input_ids=dec)["logits"]
  np.testing.assert_allclose(np.asarray(logits), _t5_ref(hf, ids, mask, dec), atol=ATOL)


def _t5_v1_1_untied(path):
  """A T5 v1.1 checkpoint laid out as on the Hub: gated-gelu, its own lm_head, no logit scaling."""
  _hf(T.T5ForConditionalGeneration, _t5_cfg("gated-gelu", tie_word_embeddings=False), path)
  weights = load_file(path / "model.safetensors")
  weights["lm_head.weight"] = torch.randn(VOCAB, 32, generator=torch.Generator().manual_seed(3))
  save_file(weights, path / "model.safetensors", metadata={"format": "pt"})
  config = json.loads((path / "config.json").read_text())
  config.update(tie_word_embeddings=False, scale_decoder_outputs=False)
  (path / "config.json").write_text(json.dumps(config))
  return T.T5ForConditionalGeneration.from_pretrained(path).eval()


def test_t5_v1_1_untied_gated_logits(tmp_path):
  hf = _t5_v1_1_untied(tmp_path)
  ids, mask, dec = _t5_inputs(10)
  model = from_pretrained(tmp_path, task="lm")
  assert not model.cfg.tie_embeddings and not model.cfg.scale_tied_logits and model.cfg.gated_mlp
  assert model.cfg.num_decoder_layers == 3 and model.cfg.activation == "gelu_tanh"
  logits = _run(model, ids, mask, decoder_input_ids=dec)["logits"]
  np.testing.assert_allclose(np.asarray(logits), _t5_ref(hf, ids, mask, dec), atol=ATOL)


# ------------------------------------------------------------------------------------------ scan, shards, heads

@pytest.mark.parametrize("arch", ["bert", "t5"])
def test_scan_layers_load_equals_unrolled(tmp_path, arch):
  if arch == "bert":
    _hf(T.BertModel, _bert_cfg(), tmp_path)
    ids, mask = _batch(11)
    run = lambda m: _run(m, ids, mask)["hidden_states"]
    task = "base"
  else:
    _t5_v1_1_untied(tmp_path)
    ids, mask, dec = _t5_inputs(12)
    run = lambda m: _run(m, ids, mask, decoder_input_ids=dec)["logits"]
    task = "lm"
  unrolled = from_pretrained(tmp_path, task=task)
  scanned = from_pretrained(tmp_path, task=task, scan_layers=True)
  assert scanned.cfg.scan_layers
  # float32 summation order differs between the scanned and the unrolled stack (|logits| ~ 15)
  np.testing.assert_allclose(np.asarray(run(scanned)), np.asarray(run(unrolled)), atol=1e-5, rtol=1e-5)


def test_sharded_index_checkpoint(tmp_path):
  torch.manual_seed(0)
  hf = _perturb(T.LlamaForCausalLM(_llama_cfg()))
  hf.save_pretrained(tmp_path, safe_serialization=True, max_shard_size="20KB")
  assert (tmp_path / "model.safetensors.index.json").exists() and not (tmp_path / "model.safetensors").exists()
  ids, mask = _batch(13)
  with torch.no_grad():
    ref = hf(**_torch(input_ids=ids, attention_mask=mask)).logits.numpy()
  _close(_run(from_pretrained(tmp_path, task="lm"), ids, mask)["logits"], ref, mask)


def test_bfloat16_checkpoint_loads_exactly(tmp_path):
  torch.manual_seed(0)
  hf = _perturb(T.LlamaForCausalLM(_llama_cfg())).to(torch.bfloat16)
  hf.save_pretrained(tmp_path, safe_serialization=True)
  ref = hf.model.layers[1].self_attn.k_proj.weight.detach().float().numpy()
  as_bf16 = from_pretrained(tmp_path, task="lm", param_dtype="bfloat16")
  kernel = as_bf16.decoder.layers[1].attn.key.kernel
  assert kernel.dtype == jnp.bfloat16
  np.testing.assert_array_equal(np.asarray(kernel[...], np.float32), ref.T)
  as_f32 = from_pretrained(tmp_path, task="lm")
  np.testing.assert_array_equal(np.asarray(as_f32.decoder.layers[1].attn.key.kernel[...]), ref.T)


def test_missing_head_is_initialised_with_a_notice(tmp_path, caplog):
  _hf(T.BertModel, _bert_cfg(), tmp_path)
  with caplog.at_level(logging.WARNING, logger="lightft_jax.models.hf"):
    model = from_pretrained(tmp_path, task="classification", num_labels=4)
  assert "head.out.kernel" in caplog.text and "freshly initialised" in caplog.text
  assert model.head.out.kernel.shape == (32, 4)
  ids, mask = _batch(14)
  assert np.isfinite(np.asarray(_run(model, ids, mask)["logits"])).all()


# ------------------------------------------------------------------------------------------ export

def _reload_in_transformers(model, path):
  save_pretrained(model, path)
  config = json.loads((path / "config.json").read_text())
  return getattr(T, config["architectures"][0]).from_pretrained(path).eval()


@pytest.mark.parametrize("case", ["bert-cls", "roberta-cls", "gpt2-lm", "llama-lm", "mistral-lm", "t5-v1.0",
                                  "t5-v1.1"])
def test_save_pretrained_roundtrip_through_transformers(tmp_path, case):
  src, dst = tmp_path / "src", tmp_path / "dst"
  kind = case.split("-")[0]
  if case == "t5-v1.1":
    _t5_v1_1_untied(src)
  else:
    cls, cfg = {"bert": (T.BertForSequenceClassification, lambda: _bert_cfg(num_labels=3)),
                "roberta": (T.RobertaForSequenceClassification, lambda: _roberta_cfg(num_labels=3)),
                "gpt2": (T.GPT2LMHeadModel, _gpt2_cfg), "llama": (T.LlamaForCausalLM, _llama_cfg),
                "mistral": (T.MistralForCausalLM, _mistral_cfg),
                "t5": (T.T5ForConditionalGeneration, lambda: _t5_cfg("relu"))}[kind]
    _hf(cls, cfg(), src)
  task = "classification" if case.endswith("cls") else "lm"
  model = from_pretrained(src, task=task, scan_layers=kind == "llama")  # export splits scanned stacks too
  reloaded = _reload_in_transformers(model, dst)
  ids, mask = _batch(15)
  if kind == "roberta":
    ids = np.where(mask == 1, ids, 1)
  if kind == "t5":
    dec = np.random.RandomState(16).randint(2, VOCAB, (3, 4))
    ours = _run(model, ids, mask, decoder_input_ids=dec)["logits"]
    np.testing.assert_allclose(np.asarray(ours), _t5_ref(reloaded, ids, mask, dec), atol=ATOL)
    return
  with torch.no_grad():
    ref = reloaded(**_torch(input_ids=ids, attention_mask=mask)).logits.numpy()
  ours = np.asarray(_run(model, ids, mask)["logits"])
  if task == "lm":
    _close(ours, ref, mask)
  else:
    np.testing.assert_allclose(ours, ref, atol=ATOL)
