"""Sharded steps on 8 simulated CPU devices: data-parallel, FSDP and tensor-parallel runs match one device."""

import jax
import ml_collections
import numpy as np
import pytest
from flax import nnx

from lightft_jax import peft
from lightft_jax.models import Transformer, get_preset
from lightft_jax.train import config_lib, optim, sharding as shd, steps

CFG = get_preset("tiny-bert", d_model=32, n_heads=4, d_ff=64, vocab_size=256, max_positions=32)


def batches(n=10, b=8, t=12, seed=0):
  rng = np.random.default_rng(seed)
  for _ in range(n):
    yield {"input_ids": rng.integers(0, 256, (b, t)).astype(np.int32),
           "attention_mask": (np.arange(t)[None] < rng.integers(4, t + 1, (b, 1))).astype(np.int32),
           "labels": rng.integers(0, 3, (b,)).astype(np.int32)}


def run(mesh, *, accum=1, method="full", n=10):
  model = Transformer(CFG, task="classification", num_labels=3, rngs=nnx.Rngs(0))
  peft.apply(model, ml_collections.ConfigDict({"method": method}))
  filt = peft.trainable_filter(model)
  cfg = config_lib.base_config()
  tx = optim.make_optimizer(cfg.optimizer, cfg.schedule, nnx.to_pure_dict(nnx.state(model, filt)), n)
  prog = steps.build_program(model, filt, tx, kind="classification", mesh=mesh, accum_steps=accum)
  state = steps.init_state(prog, 0)
  frozen, rest = steps.place_frozen(prog)
  losses = []
  for b in batches(n):
    state, m = prog.train_step(state, frozen, rest, shd.global_batch(b, mesh))
    losses.append(float(m["loss"]))
  return np.array(losses), state, frozen, prog


_RUNS = {}


def cached_run(**axes):
  key = tuple(sorted(axes.items()))
  if key not in _RUNS:
    _RUNS[key] = run(shd.make_mesh(**axes))
  return _RUNS[key]


@pytest.fixture(scope="module")
def single():
  return run(shd.make_mesh(1, 1, 1, devices=jax.devices()[:1]))


@pytest.mark.parametrize("axes", [dict(data=8), dict(data=1, fsdp=8), dict(data=2, fsdp=1, tensor=4),
                                  dict(data=1, fsdp=2, tensor=4)], ids=["dp", "fsdp", "tp", "fsdp-tp"])
def test_sharded_losses_match_one_device(single, axes):
  losses, state, _, _ = cached_run(**axes)
  assert losses[-1] < losses[0] or not np.allclose(losses, losses[0])  # it trains
  np.testing.assert_allclose(losses, single[0], atol=1e-5, rtol=0)
  same = jax.tree.map(lambda a, b: np.allclose(np.asarray(a), np.asarray(b), atol=1e-5),
                      state["params"], single[1]["params"])
  assert all(jax.tree.leaves(same))


def test_large_parameter_is_split():
  _, state, _, _ = cached_run(data=1, fsdp=2, tensor=4)
  emb = state["params"]["embed"]["tokens"]["embedding"]  # logical (vocab, embed) -> (tensor, fsdp)
  assert emb.sharding.spec == jax.sharding.PartitionSpec("tensor", "fsdp")
  assert {s.data.shape for s in emb.addressable_shards} == {(256 // 4, 32 // 2)}
  up = state["params"]["encoder"]["layers"][0]["mlp"]["up"]["kernel"]  # (embed, mlp) -> (fsdp, tensor)
  assert {s.data.shape for s in up.addressable_shards} == {(32 // 2, 64 // 4)}
  mu = state["opt_state"][1][0].mu["encoder"]["layers"][0]["mlp"]["up"]["kernel"]  # optimizer state follows
  assert mu.sharding.spec == up.sharding.spec


def test_gradient_accumulation_matches_full_batch(single):
  losses, _, _, _ = run(shd.make_mesh(1, 1, 1, devices=jax.devices()[:1]), accum=2)
  np.testing.assert_allclose(losses, single[0], atol=1e-5, rtol=0)


def test_only_trainable_params_get_state_and_frozen_are_untouched():
  mesh = shd.make_mesh(data=8)
  losses, state, frozen, prog = run(mesh, method="head", n=3)
  assert set(state["params"]) == {"head"}
  leaves = jax.tree.leaves(state["opt_state"])
  n_head = sum(x.size for x in jax.tree.leaves(state["params"]))
  assert sum(x.size for x in leaves if x.ndim) == 2 * n_head  # adam mu + nu for the head only
  ref = Transformer(CFG, task="classification", num_labels=3, rngs=nnx.Rngs(0))
  emb = frozen["embed"]["tokens"]["embedding"]
  assert not emb.is_deleted()  # not donated: the same buffers serve every step
  np.testing.assert_array_equal(np.asarray(emb), np.asarray(ref.embed.tokens.embedding[...]))


def test_mesh_errors_are_clear():
  with pytest.raises(ValueError, match="needs 16 devices"):
    shd.make_mesh(data=4, fsdp=4, tensor=1)
  with pytest.raises(ValueError, match="unknown mesh axis"):
    shd.merge_rules((("embed", "model"),))


def test_logical_to_spec_skips_non_dividing_axes():
  mesh = shd.make_mesh(data=1, fsdp=2, tensor=4)
  assert shd.logical_to_spec(("embed", "mlp"), (32, 64), mesh) == jax.sharding.PartitionSpec("fsdp", "tensor")
  assert shd.logical_to_spec(("embed", None), (32, 3), mesh) == jax.sharding.PartitionSpec("fsdp")
  assert shd.logical_to_spec(("vocab", "embed"), (30, 32), mesh) == jax.sharding.PartitionSpec(None, "fsdp")


def _live_bytes() -> int:
  return sum(a.nbytes for a in jax.live_arrays())


@pytest.mark.parametrize("axes", [dict(data=1), dict(data=1, fsdp=8)], ids=["one-device", "fsdp"])
def test_place_frozen_keeps_one_copy_of_the_frozen_weights(axes):
  """Placing the frozen weights leaves one copy alive: shared with the model when nothing moves, and
  the loaded copy released when they are resharded."""
  devices = jax.devices()[:1] if axes == dict(data=1) else jax.devices()
  mesh = shd.make_mesh(**axes, devices=devices)
  model = Transformer(CFG, task="classification", num_labels=3, rngs=nnx.Rngs(0))
  peft.apply(model, ml_collections.ConfigDict({"method": "lora", "r": 2}))
  filt = peft.trainable_filter(model)
  tx = optim.make_optimizer(config_lib.base_config().optimizer, config_lib.base_config().schedule,
                            nnx.to_pure_dict(nnx.state(model, filt)), 1)
  prog = steps.build_program(model, filt, tx, kind="classification", mesh=mesh)
  loaded = jax.tree.leaves(prog.frozen.pure)
  frozen_bytes = sum(x.nbytes for x in loaded)
  del loaded
  before = _live_bytes()
  frozen, _ = steps.place_frozen(prog, model)
  placed = jax.tree.leaves(frozen)
  in_model = jax.tree.leaves(nnx.to_pure_dict(nnx.state(model, nnx.All(nnx.Param, nnx.Not(filt)))))
  assert len(placed) == len(in_model) and all(any(p is m for m in in_model) for p in placed)
  after = _live_bytes()
  if len(devices) == 1:
    assert after == before  # reused, not copied
  else:
    assert all(x.sharding.mesh.devices.size == 8 for x in placed)
    assert after < before + frozen_bytes / 2  # the unsharded loaded copy is gone


def test_unknown_logical_axis_name_is_an_error_listing_the_known_names():
  mesh = shd.make_mesh(data=1, fsdp=2, tensor=4)
  with pytest.raises(ValueError, match=r"unknown logical axis name\(s\) \['kv_head'\].*known: \[.*'embed'.*'kv_heads'"):
    shd.logical_to_spec(("kv_head", None), (4, 8), mesh)
  rules = shd.merge_rules((("kv_head", "tensor"),))  # a new name is declared through a rule
  assert shd.logical_to_spec(("kv_head", None), (4, 8), mesh, rules) == jax.sharding.PartitionSpec("tensor")


_METHOD_OPTIONS = {"mask": {"params": r".*attn.*kernel", "density": 0.5}, "layers": {"layers": (0,)}}


@pytest.mark.parametrize("method", peft.core.methods())
def test_every_parameter_axis_name_has_a_rule(method):
  """Every registered PEFT method's parameters (and the model's) name only logical axes the rules know."""
  mesh = shd.make_mesh(data=1, fsdp=4, tensor=2)
  model = Transformer(get_preset("tiny-gpt2"), task="classification", num_labels=3, rngs=nnx.Rngs(0))
  opts = {"method": method, **_METHOD_OPTIONS.get(method, {})}
  if "n_tasks" in peft.core._METHODS[method].defaults:
    opts["n_tasks"] = 2
  peft.apply(model, ml_collections.ConfigDict(opts))
  assert shd.state_specs(nnx.state(model), mesh) is not None


def test_prefix_slots_split_by_kv_head():
  mesh = shd.make_mesh(data=1, fsdp=4, tensor=2)
  model = Transformer(get_preset("tiny-llama"), task="lm", rngs=nnx.Rngs(0))  # 2 kv heads
  peft.apply(model, ml_collections.ConfigDict({"method": "prefix", "num_tokens": 3}))
  specs = shd.state_specs(nnx.state(model), mesh)
  assert specs["decoder"]["layers"][0]["attn"]["extra_kv"]["prefix_k"] == jax.sharding.PartitionSpec(None, "tensor")


@pytest.mark.parametrize("method", ["lora", pytest.param("ia3", marks=pytest.mark.slow)])
def test_peft_factors_are_sharded_by_their_axis_names_and_match_one_device(method):
  """LoRA / IA3 weights carry the logical axes of the kernel they adapt (extensions.axis_names), so on an FSDP x
  tensor mesh they are split like it, and the run gives the one-device losses and weights."""
  mesh = shd.make_mesh(data=1, fsdp=2, tensor=4)
  losses, state, _, _ = run(mesh, method=method, n=4)
  one_losses, one_state, _, _ = run(shd.make_mesh(1, 1, 1, devices=jax.devices()[:1]), method=method, n=4)
  np.testing.assert_allclose(losses, one_losses, atol=1e-5, rtol=0)
  for a, b in zip(jax.tree.leaves(state["params"]), jax.tree.leaves(one_state["params"])):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-5, rtol=0)
  split = {jax.tree_util.keystr(p): v.sharding.spec for p, v in jax.tree_util.tree_leaves_with_path(state["params"])
           if any(a is not None for a in v.sharding.spec)}
  assert split, "no PEFT weight is split over the mesh"
  if method == "lora":  # A [in, r] splits like the kernel's input axis, B [r, out] like its output axis
    assert {tuple(s) for s in split.values()} == {("fsdp",), (None, "tensor")}, split
