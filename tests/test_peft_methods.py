"""Invariants of the PEFT methods: zero-init identity, what trains, analytic counts, merge, named adapters,
prefix with a KV cache, prompt init, selective tuning and clear errors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from lightft_jax import peft
from lightft_jax.models import Transformer, get_preset
from lightft_jax.peft.adapters import AdapterUnit
from lightft_jax.peft.lora import LoraUnit
from peft_test_utils import adam_steps

IDS = jnp.array([[5, 17, 3, 42, 8, 11], [7, 7, 60, 2, 91, 33]], jnp.int32)


def tiny(name="tiny-gpt2", task="lm", **kw):
  return Transformer(get_preset(name, n_layers=2, **kw), task=task, num_labels=3 if task != "lm" else None,
                     rngs=nnx.Rngs(0))


def logits(model, **kw):
  if model.cfg.arch == "encoder_decoder":
    kw.setdefault("decoder_input_ids", IDS[:, :3])
  return np.asarray(model(IDS, **kw)["logits"])


def randomize(model, unit_type, names, seed=0, scale=0.2):
  """Gives the zero-initialised factors of every `unit_type` module random values."""
  key = jax.random.key(seed)
  for _, u in nnx.iter_modules(model):
    if isinstance(u, unit_type):
      for n in names:
        key, sub = jax.random.split(key)
        var = getattr(u, n)
        var[...] = scale * jax.random.normal(sub, var.shape)


@pytest.mark.parametrize("preset,task,cfg", [
    ("tiny-bert", "classification", {"method": "lora", "r": 4, "targets": "all_linear", "dora": True}),
    ("tiny-gpt2", "lm", {"method": "lora", "r": 4, "targets": ["qkv", "embed.tokens"]}),
    pytest.param("tiny-t5", "lm", [{"method": "adapter", "config": "houlsby"}, {"method": "ia3"}],
                 marks=pytest.mark.slow),
    ("tiny-llama", "lm", {"method": "adapter", "config": "pfeiffer", "placement": "parallel"}),
], ids=["bert-dora", "gpt2-lora-fused-embed", "t5-houlsby-ia3", "llama-parallel"])
def test_fresh_methods_leave_outputs_unchanged(preset, task, cfg):
  model = tiny(preset, task)
  before = logits(model)
  peft.apply(model, cfg)
  np.testing.assert_allclose(logits(model), before, atol=1e-6, rtol=0)


def test_training_moves_only_trainable_parameters():
  model = tiny("tiny-bert", "classification")
  peft.apply(model, [{"method": "prefix", "num_tokens": 3, "projection": True, "hidden": 16},
                     {"method": "adapter", "config": "pfeiffer", "placement": "parallel"},
                     {"method": "lora", "r": 2}])
  filt = peft.trainable_filter(model)
  _, trainable, frozen, _ = nnx.split(model, filt, nnx.Param, ...)
  frozen_before = jax.tree.map(np.array, frozen)
  trainable_before = jax.tree.map(np.array, trainable)
  run = adam_steps(model, IDS, jnp.array([0, 2]), 3)
  assert jax.tree.structure(run.grads) == jax.tree.structure(run.trainable)
  n_trainable = sum(x.size for x in jax.tree.leaves(run.trainable))
  assert n_trainable == peft.param_counts(model)[0]
  assert sum(x.size for x in jax.tree.leaves(run.opt_state)) == 2 * n_trainable + 1  # adam mu, nu, count
  frozen_after = nnx.split(model, peft.trainable_filter(model), nnx.Param, ...)[2]
  for a, b in zip(jax.tree.leaves(frozen_after), jax.tree.leaves(frozen_before)):
    np.testing.assert_array_equal(np.asarray(a), b)
  moved = [not np.array_equal(np.asarray(a), b) for a, b in zip(jax.tree.leaves(run.trainable),
                                                                 jax.tree.leaves(trainable_before))]
  assert all(moved)


def _count(preset, cfg, task="base"):
  def build():
    return peft.apply(Transformer(get_preset(preset), task=task, rngs=nnx.Rngs(0)), cfg)
  return peft.param_counts(nnx.eval_shape(build))[0]


def test_analytic_parameter_counts():
  assert _count("roberta-base", {"method": "lora", "r": 8, "targets": "qv"}) == 294_912
  d, m, layers = 768, 768 // 16, 12
  assert _count("bert-base", {"method": "adapter", "config": "houlsby"}) == layers * 2 * (2 * d * m + m + d)
  assert _count("bert-base", {"method": "adapter", "config": "pfeiffer"}) == layers * (2 * d * m + m + d)
  assert _count("bert-base", {"method": "prefix", "num_tokens": 10}) == layers * 2 * 10 * d
  hidden = 32
  assert _count("gpt2", {"method": "prefix", "num_tokens": 5, "projection": True, "hidden": hidden}) == \
      5 * d + d * hidden + hidden + hidden * layers * 2 * d + layers * 2 * d
  assert _count("bert-base", {"method": "ia3"}) == layers * (d + d + 3072)
  assert _count("bert-base", {"method": "prompt", "num_tokens": 20}) == 20 * d


def test_merge_matches_unmerged_and_unmerge_restores():
  model = tiny("tiny-llama")
  peft.apply(model, [{"method": "lora", "r": 4, "targets": "attn", "dora": True, "name": "a"},
                     {"method": "lora", "r": 2, "targets": "mlp", "rslora": True, "alpha": 4, "name": "a2"}])
  peft.set_active(model, ["a", "a2"])
  randomize(model, LoraUnit, ["lora_b"])
  kernels = [np.array(v[...]) for p, v in nnx.iter_graph(model) if p and p[-1] == "kernel"]
  unmerged = logits(model)
  peft.merge(model)
  np.testing.assert_allclose(logits(model), unmerged, atol=1e-5, rtol=0)
  peft.unmerge(model)
  np.testing.assert_allclose(logits(model), unmerged, atol=1e-5, rtol=0)
  after = [np.array(v[...]) for p, v in nnx.iter_graph(model) if p and p[-1] == "kernel"]
  for a, b in zip(after, kernels):
    np.testing.assert_allclose(a, b, atol=1e-6)


def test_named_adapters_per_call_and_per_example():
  model = tiny("tiny-gpt2")
  peft.apply(model, [{"method": "lora", "r": 2, "name": "sst2"}, {"method": "lora", "r": 4, "name": "mnli"},
                     {"method": "adapter", "config": "pfeiffer", "name": "mnli"}])
  randomize(model, LoraUnit, ["lora_b"])
  randomize(model, AdapterUnit, ["adapter_up"], seed=3)
  assert peft.adapter_names(model) == ("sst2", "mnli")
  base = logits(model, ctx={"adapter": None})
  sst2, mnli = logits(model, ctx={"adapter": "sst2"}), logits(model, ctx={"adapter": "mnli"})
  np.testing.assert_allclose(logits(model), sst2, atol=1e-6)  # the first adapter is active by default
  assert np.abs(sst2 - base).max() > 1e-3 and np.abs(mnli - sst2).max() > 1e-3
  mixed = logits(model, ctx={"adapter_ids": jnp.array([1, -1])})
  np.testing.assert_allclose(mixed[0], mnli[0], atol=1e-5)
  np.testing.assert_allclose(mixed[1], base[1], atol=1e-5)
  with pytest.raises(ValueError, match="unknown adapter 'qnli'"):
    logits(model, ctx={"adapter": "qnli"})


def test_prefix_with_kv_cache_matches_full_forward():
  model = tiny("tiny-llama")
  peft.apply(model, {"method": "prefix", "num_tokens": 4})
  full = np.asarray(model(IDS)["logits"])
  cache = model.init_cache(2, 8)
  mask = jnp.zeros((2, 8), jnp.int32).at[:, :6].set(1)
  out = model(IDS[:, :5], attention_mask=mask.at[:, 5].set(0), cache=cache)
  step = model(IDS[:, 5:6], attention_mask=mask, cache=out["cache"])
  np.testing.assert_allclose(np.asarray(out["logits"]), full[:, :5], atol=1e-5)
  np.testing.assert_allclose(np.asarray(step["logits"])[:, 0], full[:, 5], atol=1e-5)
  without = tiny("tiny-llama")
  assert np.abs(logits(without) - full).max() > 1e-4


@pytest.mark.slow
def test_prefix_reparam_in_encoder_decoder():
  model = tiny("tiny-t5")
  before = logits(model)
  peft.apply(model, {"method": "prefix", "num_tokens": 3, "projection": True, "hidden": 8,
                     "targets": r".*layers\.\d+\.(attn|cross_attn)$"})
  after = logits(model)
  assert after.shape == before.shape and np.abs(after - before).max() > 1e-4
  paths = {".".join(map(str, p)) for p, _ in nnx.iter_graph(model)}
  assert any("prefix_mlp_out" in p for p in paths)


def test_prompt_tuning_outputs_align_with_inputs():
  model = tiny("tiny-gpt2")
  peft.apply(model, {"method": "prompt", "num_tokens": 5, "init": "vocab"})
  out = model(IDS)
  assert out["logits"].shape == (2, 6, model.cfg.vocab_size) and out["hidden_states"].shape[1] == 6
  table = np.asarray(model.embed.tokens.embedding[...])
  rows = np.asarray(model.input_transform.prompt[...])
  assert all(any(np.array_equal(r, t) for t in table[:5000]) for r in rows)


def test_prompt_init_from_text():
  from lightft_jax.models import assets
  from lightft_jax.models.tokenizer import Tokenizer
  tok = Tokenizer.from_file(assets.minilm_dir())
  model = tiny("tiny-bert", "classification", vocab_size=30522, d_model=16, n_heads=2, d_ff=16)
  text = "classify the sentiment"
  peft.apply(model, {"method": "prompt", "num_tokens": 7, "init": "text", "init_text": text,
                     "tokenizer": str(assets.minilm_dir())})
  ids = tok.encode(text)
  want = np.asarray(model.embed.tokens.embedding[...])[np.resize(ids, 7)]
  np.testing.assert_array_equal(np.asarray(model.input_transform.prompt[...]), want)


def test_selective_methods_train_what_they_name():
  model = tiny("tiny-bert", "classification")
  peft.apply(model, {"method": "bitfit", "train_head": False})
  biases = sum(v[...].size for p, v in nnx.iter_graph(model) if isinstance(v, nnx.Param) and p[-1] == "bias")
  assert peft.param_counts(model)[0] == biases

  model = tiny("tiny-gpt2")
  peft.apply(model, {"method": "layers", "top_k": 1})
  trained = {".".join(map(str, p[:3])) for p, v in nnx.iter_graph(model) if isinstance(v, peft.TunedParam)}
  assert trained == {"decoder.layers.1"}

  model = tiny("tiny-gpt2")
  peft.apply(model, {"method": "layernorm"})
  assert peft.param_counts(model)[0] == (2 * 2 + 1) * 2 * 64


def test_sparse_masks_by_magnitude_and_gradient():
  model = tiny("tiny-gpt2")
  before = logits(model)
  peft.apply(model, {"method": "mask", "by": "magnitude", "density": 0.01, "targets": "mlp"})
  np.testing.assert_allclose(logits(model), before, atol=1e-6)
  total = sum(m.kernel.size for p, m in nnx.iter_modules(tiny("tiny-gpt2"))
              if ".mlp." in ".".join(map(str, p)) and hasattr(m, "kernel"))
  assert peft.param_counts(model)[0] == round(0.01 * total)

  model = tiny("tiny-gpt2")
  loss = lambda m, batch: jnp.mean(jax.nn.log_softmax(m(batch)["logits"]) ** 2)
  scores = peft.selective.grad_scores(model, loss, [IDS, IDS[::-1]], targets="qv")
  peft.apply(model, {"method": "mask", "by": "grad", "density": 0.05, "targets": "qv", "scores": list(scores.items())})
  chosen = {p: m.sparse_index[...] for p, m in nnx.iter_modules(model) if hasattr(m, "sparse_index")}
  flat = np.concatenate([np.ravel(np.asarray(s)) for s in scores.values()])
  threshold = np.sort(flat)[::-1][len(np.concatenate([np.asarray(i) for i in chosen.values()])) - 1]
  for path, idx in chosen.items():
    assert np.all(np.ravel(np.asarray(scores[".".join(map(str, path))]))[np.asarray(idx)] >= threshold)


@pytest.mark.parametrize("cfg,match", [
    ({"method": "loraa"}, "unknown PEFT method 'loraa'"),
    ({"method": "lora", "rank": 4}, "unknown option"),
    ({"method": "lora", "r": 0}, "rank r must be a positive integer"),
    ({"method": "lora", "targets": "nothing_here"}, "match no"),
    ({"method": "prefix", "num_tokens": 128}, "too long"),
    ({"method": "prompt", "num_tokens": 500}, "too long"),
    ({"method": "adapter", "config": "houlsbi"}, "unknown adapter config"),
])
def test_bad_input_gets_clear_errors(cfg, match):
  with pytest.raises(ValueError, match=match):
    peft.apply(tiny(), cfg)


def test_scanned_models_take_wrapper_methods_but_not_layer_selection():
  model = tiny(scan_layers=True)
  peft.apply(model, {"method": "lora", "r": 2})  # stacked [L, ...] factors (tests/test_peft_scanned.py)
  assert model.decoder.layers.attn.qkv.lora["default"].lora_a.shape == (2, 64, 2)
  peft.apply(model, {"method": "bitfit"})  # whole-parameter selection works on stacked layers
  assert peft.param_counts(model)[0] > 0
  with pytest.raises(ValueError, match="scan_layers=False: a scanned stack holds"):
    peft.apply(tiny(scan_layers=True), {"method": "layers", "top_k": 1})
  with pytest.raises(ValueError, match="needs a model built with scan_layers=False"):
    peft.apply(tiny(scan_layers=True), {"method": "mask", "by": "magnitude"})


def test_summary_lists_methods():
  model = peft.apply(tiny(), [{"method": "lora", "r": 2}, {"method": "ia3"}])
  text = peft.summary(model)
  assert "LoraParam" in text and "IA3Param" in text and "trainable params" in text
