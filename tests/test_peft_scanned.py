"""PEFT on scan-over-layers models (scan_layers=True): every method attaches with stacked [L, ...] parameters
(logical axis "layers" first) and, given the unrolled model's weights, computes the unrolled model's outputs;
zero-init identity, training through `build_program`, HF-PEFT files and merging agree with the unrolled model."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from lightft_jax import peft
from lightft_jax.models import Transformer, get_preset
from lightft_jax.peft import core
from lightft_jax.train import sharding as shd
from lightft_jax.train import steps

L = 2  # layers per stack (every PEFT weight perturbed at random, so a layer-order mistake changes the output)
IDS = jnp.array([[5, 17, 3, 42, 8, 11], [7, 7, 60, 2, 91, 33]], jnp.int32)
CTX = {"task_ids": jnp.array([0, 1], jnp.int32)}
SMALL_HYPER = dict(n_tasks=2, task_dim=8, site_dim=8, proj_hidden=8, proj_dim=8)


def build(preset, task, scan, **kw):
  cfg = get_preset(preset, n_layers=L, scan_layers=scan, d_model=32, d_ff=48, vocab_size=128, max_positions=32, **kw)
  return Transformer(cfg, task=task, num_labels=3 if task != "lm" else None, rngs=nnx.Rngs(0))


def stacked_view(model, filt=nnx.Param) -> dict:
  """Flat {path: array} of `model`'s parameters in the scanned layout: layers.i.x -> layers.x[i]. A module shared
  by the layers (reached first through layer 0, e.g. a prefix reparameterisation) keeps its own shape."""
  groups: dict[tuple, dict[int, jax.Array]] = {}
  for path, var in nnx.to_flat_state(nnx.state(model, filt)):
    at = path.index("layers") if "layers" in path else -1
    if at >= 0 and len(path) > at + 1 and str(path[at + 1]).isdigit():
      groups.setdefault(path[:at + 1] + path[at + 2:], {})[int(path[at + 1])] = var[...]
    else:
      groups[path] = {-1: var[...]}
  return {p: v[-1] if -1 in v else (v[0] if len(v) == 1 else jnp.stack([v[i] for i in sorted(v)]))
          for p, v in groups.items()}


def copy_weights(scanned, unrolled):
  """Gives `scanned` exactly `unrolled`'s parameters (base and PEFT)."""
  src = stacked_view(unrolled)
  state = nnx.state(scanned, nnx.Param)
  flat = nnx.to_flat_state(state)
  assert {p for p, _ in flat} == set(src), "scanned and unrolled parameter trees differ"
  for path, var in flat:
    assert var[...].shape == src[path].shape, (path, var[...].shape, src[path].shape)
    var[...] = src[path]
  nnx.update(scanned, state)


def scanned_base(preset, task):
  """A scanned model holding the unrolled model's base weights (no PEFT)."""
  scanned = build(preset, task, True)
  copy_weights(scanned, build(preset, task, False))
  return scanned


@functools.lru_cache(maxsize=None)
def plain_outputs(preset, task):
  """The outputs of the model without PEFT."""
  return outputs(build(preset, task, False))


def perturb(model, seed=3, std=0.2):
  """Moves every PEFT parameter off its init (zero-initialised factors would hide a wrong layer order)."""
  state = nnx.state(model, peft.PeftParam)
  leaves, tree = jax.tree.flatten(state)
  keys = jax.random.split(jax.random.key(seed), len(leaves))
  nnx.update(model, jax.tree.unflatten(tree, [x + std * jax.random.normal(k, x.shape, x.dtype)
                                              for k, x in zip(keys, leaves)]))


def outputs(model, **kw):
  if model.cfg.arch == "encoder_decoder":
    kw.setdefault("decoder_input_ids", IDS[:, :4])
  return np.asarray(model(IDS, ctx=CTX, **kw)["logits"])


def pair(preset, task, cfg, **kw):
  """(unrolled, scanned) with the same base weights and the same non-zero PEFT weights."""
  unrolled, scanned = build(preset, task, False, **kw), build(preset, task, True, **kw)
  peft.apply(unrolled, cfg)
  peft.apply(scanned, cfg)
  perturb(unrolled)
  copy_weights(scanned, unrolled)
  return unrolled, scanned


CASES = {
    "lora": ("tiny-llama", "lm", {"method": "lora", "r": 2, "targets": "all_linear"}),
    "rslora-fused-qkv": ("tiny-gpt2", "lm", {"method": "lora", "r": 2, "alpha": 4.0, "rslora": True,
                                               "targets": "all_linear"}),
    "dora": ("tiny-llama", "lm", {"method": "lora", "r": 2, "dora": True, "targets": "qkv"}),
    "dora-bert-classifier": ("tiny-bert", "classification", {"method": "lora", "r": 2, "dora": True,
                                                             "targets": "qkv"}),
    "ia3": ("tiny-llama", "lm", {"method": "ia3"}),
    "houlsby": ("tiny-llama", "lm", {"method": "adapter", "config": "houlsby"}),
    "pfeiffer-parallel": ("tiny-llama", "lm", {"method": "adapter", "config": "pfeiffer", "placement": "parallel"}),
    "prefix": ("tiny-llama", "lm", {"method": "prefix", "num_tokens": 3}),
    "prefix-reparam-t5": ("tiny-t5", "lm", {"method": "prefix", "num_tokens": 3, "projection": True, "hidden": 8,
                                            "targets": r".*layers\.\d+\.(attn|cross_attn)$"}),
    "prompt": ("tiny-llama", "lm", {"method": "prompt", "num_tokens": 3}),
    "hyper-all-kinds": ("tiny-llama", "lm", {"method": "hyper", "emit": ("adapter", "lora", "prefix", "ln"),
                                             **SMALL_HYPER}),
    "hyper_lora-encoder": ("tiny-bert", "classification", {"method": "hyper_lora", "r": 2, **SMALL_HYPER}),
    "hyper_prefix-t5": ("tiny-t5", "lm", {"method": "hyper_prefix", "prefix_len": 2, **SMALL_HYPER}),
    "moe_lora-task": ("tiny-llama", "lm", {"method": "moe_lora", "n_tasks": 2, "task_dim": 4, "r": 2}),
    "moe_lora-token": ("tiny-gpt2", "lm", {"method": "moe_lora", "router": "token", "r": 2, "targets": "mlp"}),
    "task_gated_adapter": ("tiny-llama", "lm", {"method": "task_gated_adapter", "n_tasks": 2, "n_adapters": 2}),
    "compose-prefix-lora": ("tiny-llama", "lm", [{"method": "prefix", "num_tokens": 2},
                                                 {"method": "lora", "r": 2, "targets": "mlp"}]),
}


SLOW_CASES = ("rslora-fused-qkv", "dora-bert-classifier", "prefix-reparam-t5", "hyper-all-kinds", "hyper_lora-encoder",
              "hyper_prefix-t5", "moe_lora-token", "compose-prefix-lora")  # the default run: every method, one model


@pytest.mark.parametrize("case", [pytest.param(c, marks=pytest.mark.slow) if c in SLOW_CASES else c for c in CASES])
def test_scanned_model_computes_the_unrolled_outputs(case):
  preset, task, cfg = CASES[case]
  unrolled, scanned = pair(preset, task, cfg)
  got, want = outputs(scanned), outputs(unrolled)
  assert np.abs(want - plain_outputs(preset, task)).max() > 1e-3, "the PEFT weights should change the output"
  np.testing.assert_allclose(got, want, atol=1e-5, rtol=0)
  per_layer = [(p, v) for p, v in nnx.to_flat_state(nnx.state(scanned, peft.PeftParam)) if "layers" in p]
  for path, var in per_layer:  # stacked over the layers, "layers" the first logical axis where axes are named
    shared = var.get_metadata().get(core.LAYER_SHARED)
    assert shared or var.shape[0] == L, path
    assert shared or core.axis_names(var)[:1] in ((), ("layers",)), (path, core.axis_names(var))


@pytest.mark.parametrize("cfg", [
    {"method": "lora", "r": 2, "targets": "all_linear", "dora": True},
    pytest.param({"method": "hyper", "emit": ("adapter", "lora", "ln"), **SMALL_HYPER}, marks=pytest.mark.slow),
    pytest.param({"method": "ia3"}, marks=pytest.mark.slow),
    pytest.param({"method": "adapter", "config": "houlsby", "placement": "parallel"}, marks=pytest.mark.slow),
    pytest.param({"method": "moe_lora", "n_tasks": 2, "task_dim": 4, "r": 2}, marks=pytest.mark.slow),
    pytest.param({"method": "task_gated_adapter", "n_tasks": 2}, marks=pytest.mark.slow),
], ids=lambda c: c["method"])
def test_fresh_methods_leave_a_scanned_model_unchanged(cfg):
  model = build("tiny-llama", "lm", True)
  before = outputs(model)
  peft.apply(model, cfg)
  np.testing.assert_allclose(outputs(model), before, atol=1e-6, rtol=0)


def test_lora_factors_are_stacked_with_the_layers_axis_first():
  model = peft.apply(build("tiny-llama", "lm", True), {"method": "lora", "r": 2, "targets": "qv", "dropout": 0.1})
  unit = model.decoder.layers.attn.query.lora["default"]
  d = model.cfg.d_model
  assert unit.lora_a.shape == (L, d, 2) and unit.lora_b.shape == (L, 2, d)
  assert core.axis_names(unit.lora_a) == ("layers", "embed", None)
  assert core.axis_names(unit.lora_b) == ("layers", None, "heads")
  a = np.asarray(unit.lora_a[...])
  assert not np.allclose(a[0], a[1]), "each layer gets its own random init"
  trainable, _ = peft.param_counts(model)
  unrolled = peft.apply(build("tiny-llama", "lm", False), {"method": "lora", "r": 2, "targets": "qv"})
  assert trainable == peft.param_counts(unrolled)[0]


def test_targets_that_pick_some_layers_of_a_scanned_stack_are_an_error():
  with pytest.raises(ValueError, match=r"match only some layers of scanned modules: decoder\.layers\.attn\.query "
                                       r"\(1 of its 2 layers\)"):
    peft.apply(build("tiny-llama", "lm", True), {"method": "lora", "targets": r"decoder\.layers\.1\.attn\.query"})


@pytest.mark.slow
def test_generation_with_a_kv_cache_matches_unrolled():
  from lightft_jax.models.generate import generate
  unrolled, scanned = pair("tiny-llama", "lm", [{"method": "prefix", "num_tokens": 2},
                                                {"method": "lora", "r": 2, "targets": "qv"}])
  a = generate(unrolled, IDS[:, :4], max_new_tokens=3)
  b = generate(scanned, IDS[:, :4], max_new_tokens=3)
  np.testing.assert_array_equal(np.asarray(b), np.asarray(a))


# ----------------------------------------------------------------------------- training

@pytest.mark.parametrize("cfg", [
    {"method": "lora", "r": 2, "targets": "qv"},
    pytest.param({"method": "prefix", "num_tokens": 2, "projection": True, "hidden": 8}, marks=pytest.mark.slow),
    pytest.param({"method": "moe_lora", "n_tasks": 2, "task_dim": 4, "r": 2, "aux_loss_coef": 0.1},
                 marks=pytest.mark.slow),
], ids=lambda c: c["method"] + ("-reparam" if c.get("projection") else ""))
def test_training_a_scanned_model_moves_only_peft_parameters_like_unrolled(cfg):
  mesh = shd.make_mesh(1, 1, 1, devices=jax.devices()[:1])
  ids = np.asarray(IDS)
  batch = {"input_ids": ids, "attention_mask": np.ones_like(ids), "labels": np.roll(ids, -1, 1),
           "task_ids": np.array([0, 1], np.int32)}
  unrolled, scanned = pair("tiny-llama", "lm", cfg)
  results = {}
  for name, model in (("unrolled", unrolled), ("scanned", scanned)):
    frozen_before = stacked_view(model)
    prog = steps.build_program(model, peft.trainable_filter(model), optax.adam(1e-2), kind="lm", mesh=mesh)
    state = steps.init_state(prog, 0)
    frozen, rest = steps.place_frozen(prog)
    losses = []
    for _ in range(3):
      state, metrics = prog.train_step(state, frozen, rest, shd.global_batch(batch, mesh))
      losses.append(float(metrics["loss"]))
    trained = prog.model(state["params"], frozen, rest)
    after = stacked_view(trained)
    peft_paths = set(stacked_view(trained, peft.PeftParam))
    for path, value in after.items():
      if path in peft_paths:
        assert not np.array_equal(np.asarray(value), np.asarray(frozen_before[path])), f"{path} did not train"
      else:
        np.testing.assert_array_equal(np.asarray(value), np.asarray(frozen_before[path]), err_msg=str(path))
    results[name] = (losses, after)
  np.testing.assert_allclose(results["scanned"][0], results["unrolled"][0], rtol=1e-5)
  for path, value in results["unrolled"][1].items():
    np.testing.assert_allclose(results["scanned"][1][path], value, atol=1e-5, rtol=0, err_msg=str(path))


# ----------------------------------------------------------------------------- HF peft files

@pytest.mark.parametrize("preset,task,cfg", [
    ("tiny-gpt2", "lm", {"method": "lora", "r": 2, "targets": "all_linear", "dora": True}),
    ("tiny-llama", "lm", {"method": "ia3"}),
    ("tiny-llama", "lm", {"method": "prefix", "num_tokens": 3}),
    ("tiny-llama", "lm", {"method": "prefix", "num_tokens": 3, "projection": True, "hidden": 8}),
    ("tiny-llama", "lm", {"method": "prompt", "num_tokens": 3}),
], ids=["lora-dora", "ia3", "prefix", "prefix-reparam", "prompt"])
def test_hf_files_from_a_scanned_model_equal_the_unrolled_ones_and_load_back(tmp_path, preset, task, cfg):
  unrolled, scanned = pair(preset, task, cfg)
  peft.save_hf(unrolled, tmp_path / "unrolled")
  peft.save_hf(scanned, tmp_path / "scanned")
  for name in ("adapter_model.safetensors", "adapter_config.json"):
    assert (tmp_path / "scanned" / name).read_bytes() == (tmp_path / "unrolled" / name).read_bytes(), name
  loaded = peft.load_hf(scanned_base(preset, task), tmp_path / "unrolled")
  np.testing.assert_allclose(outputs(loaded), outputs(unrolled), atol=1e-5, rtol=0)
  peft.save_hf(loaded, tmp_path / "again")
  assert (tmp_path / "again" / "adapter_model.safetensors").read_bytes() == \
      (tmp_path / "unrolled" / "adapter_model.safetensors").read_bytes()


# ----------------------------------------------------------------------------- merging

@pytest.mark.parametrize("dora", [False, pytest.param(True, marks=pytest.mark.slow)], ids=["lora", "dora"])
def test_merge_on_a_scanned_model_equals_merge_unrolled(dora):
  unrolled, scanned = pair("tiny-llama", "lm", {"method": "lora", "r": 2, "targets": "all_linear", "dora": dora})
  want = outputs(unrolled)
  peft.merge(unrolled)
  peft.merge(scanned)
  np.testing.assert_allclose(outputs(scanned), want, atol=1e-5, rtol=0)
  merged_u, merged_s = stacked_view(unrolled), stacked_view(scanned)
  for path, value in merged_u.items():
    np.testing.assert_allclose(merged_s[path], value, atol=1e-6, rtol=0, err_msg=str(path))
  before = stacked_view(scanned_base("tiny-llama", "lm"))
  peft.unmerge(scanned)
  kernel = ("decoder", "layers", "attn", "query", "base", "kernel")
  np.testing.assert_allclose(stacked_view(scanned)[kernel], before[kernel[:4] + ("kernel",)], atol=1e-6)
  peft.merge_and_unload(scanned)
  assert not peft.lora.lora_modules(scanned)
  np.testing.assert_allclose(outputs(scanned), want, atol=1e-5, rtol=0)


@pytest.mark.slow
def test_weighted_adapters_on_a_scanned_model_equal_unrolled():
  cfgs = [{"method": "lora", "r": 2, "targets": "qv", "name": "a"},
          {"method": "lora", "r": 2, "targets": "qv", "name": "b", "seed": 1}]
  unrolled, scanned = pair("tiny-llama", "lm", cfgs)
  for model in (unrolled, scanned):
    peft.add_weighted_adapter(model, ["a", "b"], [0.7, 0.3], "mix", combination_type="svd")
    peft.set_active(model, "mix")
  np.testing.assert_allclose(outputs(scanned), outputs(unrolled), atol=1e-5, rtol=0)


@pytest.mark.slow  # over 20 s: keeps the default suite under 15 minutes on 2 cores
def test_lora_on_a_quantized_scanned_base_matches_unrolled_and_leaves_it_bit_identical():
  """nf4 kernels stacked [L, ...] quantize blockwise per layer like the unrolled ones; LoRA on top computes the
  unrolled outputs, and training steps (build_program) move only the LoRA factors: the codes stay bit-identical."""
  from lightft_jax.models import quant
  unrolled, scanned = build("tiny-llama", "lm", False), build("tiny-llama", "lm", True)
  copy_weights(scanned, unrolled)
  for m in (unrolled, scanned):
    quant.quantize_model(m, "nf4")
  assert quant.quantized_kernels(scanned)["decoder.layers.mlp.up.kernel"].shape == (L, 32, 48)
  np.testing.assert_allclose(outputs(scanned), outputs(unrolled), atol=1e-5, rtol=0)
  for m in (unrolled, scanned):
    peft.apply(m, {"method": "lora", "r": 2, "targets": "all_linear"})
  perturb(unrolled)
  src, state = stacked_view(unrolled, peft.PeftParam), nnx.state(scanned, peft.PeftParam)
  for path, var in nnx.to_flat_state(state):
    var[...] = src[path]
  nnx.update(scanned, state)
  np.testing.assert_allclose(outputs(scanned), outputs(unrolled), atol=1e-5, rtol=0)

  mesh = shd.make_mesh(1, 1, 1, devices=jax.devices()[:1])
  ids = np.asarray(IDS)
  batch = shd.global_batch({"input_ids": ids, "attention_mask": np.ones_like(ids), "labels": np.roll(ids, -1, 1)},
                           mesh)
  codes = jax.tree.map(np.array, nnx.state(scanned, quant.QuantizedWeight))
  losses = {}
  for name, model in (("unrolled", unrolled), ("scanned", scanned)):
    prog = steps.build_program(model, peft.trainable_filter(model), optax.adam(1e-2), kind="lm", mesh=mesh)
    state = steps.init_state(prog, 0)
    frozen, rest = steps.place_frozen(prog)
    losses[name] = []
    for _ in range(3):
      state, metrics = prog.train_step(state, frozen, rest, batch)
      losses[name].append(float(metrics["loss"]))
  np.testing.assert_allclose(losses["scanned"], losses["unrolled"], rtol=1e-5)
  assert losses["scanned"][-1] < losses["scanned"][0]
  trained = prog.model(state["params"], frozen, rest)
  for a, b in zip(jax.tree.leaves(nnx.state(trained, quant.QuantizedWeight)), jax.tree.leaves(codes)):
    np.testing.assert_array_equal(np.asarray(a), b)
