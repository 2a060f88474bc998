"""Mixed-adapter batches by gathering each example's LoRA factors (lora.py, named.py): the same outputs,
gradients and generations as running each example with its adapter alone, and as the masked path."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from lightft_jax import peft
from lightft_jax.models import Transformer, extensions, generate, get_preset
from lightft_jax.peft.lora import LoraDense, LoraParam, LoraUnit, set_mixed_batch

B, T = 8, 6
IDS = jnp.asarray(np.random.RandomState(0).randint(3, 1000, (B, T)), jnp.int32)


def model_with(specs, init_range=0.02, scan=False):
  """tiny-llama with one LoRA per spec dict (name a<i>), their zero B factors randomised."""
  model = Transformer(get_preset("tiny-llama", initializer_range=init_range, scan_layers=scan), task="lm",
                      rngs=nnx.Rngs(0))
  peft.apply(model, [{"method": "lora", "name": f"a{i}", **s} for i, s in enumerate(specs)])
  key = jax.random.key(1)
  for _, u in nnx.iter_modules(model):
    if isinstance(u, LoraUnit):
      key, sub = jax.random.split(key)
      u.lora_b[...] = 0.3 * jax.random.normal(sub, u.lora_b.shape)
  return model


def adapter_ids(n):
  """Per-example ids over n adapters, with one example on no adapter (-1)."""
  return jnp.asarray([(i % (n + 1)) - 1 if i % 4 == 0 else i % n for i in range(B)], jnp.int32)


def logits(model, ids=IDS, **ctx):
  return np.asarray(model(ids, ctx=ctx)["logits"])


def alone(model, ids):
  """Each example run by itself with its adapter (ctx['adapter']), stacked."""
  names = peft.adapter_names(model)
  return np.concatenate([logits(model, IDS[e:e + 1], adapter=names[i] if i >= 0 else None)
                         for e, i in enumerate(np.asarray(ids))])


@pytest.mark.parametrize("n", [pytest.param(1, marks=pytest.mark.slow), 3, 8])
def test_mixed_batch_equals_each_example_alone(n):
  model = model_with([{"r": 4, "targets": "attn"}] * n)
  assert all(m._gatherable() for _, m in nnx.iter_modules(model) if isinstance(m, LoraDense))
  ids = adapter_ids(n)
  mixed = logits(model, adapter_ids=ids)
  np.testing.assert_allclose(mixed, alone(model, ids), atol=1e-5, rtol=0)
  np.testing.assert_allclose(mixed, logits(set_mixed_batch(model, "mask"), adapter_ids=ids), atol=1e-5, rtol=0)


def lora_grads(model, ids, weights, **ctx):
  """Gradient of sum(logits * weights) with respect to every LoRA factor, as {path: array}."""
  graphdef, params, rest = nnx.split(model, LoraParam, ...)

  def loss(p):
    return jnp.sum(nnx.merge(graphdef, p, rest)(ids, ctx=ctx)["logits"] * weights)

  flat = jax.jit(jax.grad(loss))(params).flat_state()
  return {".".join(map(str, path)): np.asarray(v.get_value()) for path, v in flat}


def assert_close_grads(actual, desired, name):
  """Equal up to float32 summation order: a sub-batch sums the same terms in another order, whose error scales
  with the tensor's largest entry (here up to ~25), not with each small entry."""
  np.testing.assert_allclose(actual, desired, rtol=1e-5, atol=2e-6 * max(1.0, float(np.abs(desired).max())),
                             err_msg=name)


def test_gradients_match_masked_path_and_come_from_own_examples():
  model = model_with([{"r": 4, "targets": "attn"}, {"r": 2, "targets": "qv"}, {"r": 4, "targets": "mlp"},
                      {"r": 4, "targets": "attn"}])
  ids = jnp.asarray([0, 2, -1, 1, 0, 2, 1, 0], jnp.int32)  # a3 has no example
  weights = jax.random.normal(jax.random.key(2), (B, T, model.cfg.vocab_size))
  gathered = lora_grads(model, IDS, weights, adapter_ids=ids)
  masked = lora_grads(set_mixed_batch(model, "mask"), IDS, weights, adapter_ids=ids)
  set_mixed_batch(model, "gather")
  assert gathered.keys() == masked.keys()
  for k in gathered:
    np.testing.assert_allclose(gathered[k], masked[k], atol=1e-5, rtol=1e-5, err_msg=k)
  for i, name in enumerate(peft.adapter_names(model)):
    rows = np.flatnonzero(np.asarray(ids) == i)
    own = {k: v for k, v in gathered.items() if f".lora.{name}." in k}
    assert own
    if not len(rows):
      assert all(not v.any() for v in own.values())
      continue
    sub = lora_grads(model, IDS[rows], weights[rows], adapter=name)
    for k, v in own.items():
      assert_close_grads(v, sub[k], k)


@pytest.mark.parametrize("scan", [False, pytest.param(True, marks=pytest.mark.slow)])
def test_generation_with_per_example_adapters_equals_per_example_generation(scan):
  model = model_with([{"r": 4, "targets": "attn"}] * 3, init_range=0.2, scan=scan)
  prompts, mask = np.zeros((4, 5), np.int32), np.zeros((4, 5), np.int32)
  for e, n in enumerate([5, 2, 4, 3]):  # left-padded prompts of different lengths
    prompts[e, 5 - n:], mask[e, 5 - n:] = 3 + 7 * e + np.arange(n), 1
  ids = jnp.asarray([2, 0, -1, 1], jnp.int32)
  tokens, lg = generate(model, prompts, mask, max_new_tokens=6, ctx={"adapter_ids": ids}, return_logits=True)
  names = peft.adapter_names(model)
  for e, i in enumerate(np.asarray(ids)):
    n = int(mask[e].sum())
    peft.set_active(model, [names[i]] if i >= 0 else [])  # (generate's ctx takes arrays, not names)
    t1, l1 = generate(model, prompts[e:e + 1, 5 - n:], max_new_tokens=6, return_logits=True)
    np.testing.assert_array_equal(np.asarray(tokens[e]), np.asarray(t1[0]))
    np.testing.assert_allclose(np.asarray(lg[e]), np.asarray(l1[0]), atol=1e-4, rtol=0)
  assert len({tuple(np.asarray(t)) for t in tokens}) > 1  # the adapters lead to different continuations


@pytest.mark.parametrize("scan", [pytest.param(False, marks=pytest.mark.slow), True])
def test_hoisted_stacks_give_the_same_outputs(scan):
  """extensions.hoist stacks each LoRA Dense's adapters once ([N, in, r]; scanned: [L, N, in, r]) and the
  gathered path reads them: same logits as stacking per call (generate hoists inside its trace)."""
  model = model_with([{"r": 4, "targets": "attn"}, {"r": 2, "targets": "attn"}, {"r": 4, "targets": "qv"}], scan=scan)
  ids = jnp.asarray([0, 1, 2, -1, 2, 1, 0, 0], jnp.int32)
  before = logits(model, adapter_ids=ids)
  extensions.hoist(model)
  q = model.decoder.layers.attn.query if scan else model.decoder.layers[0].attn.query
  assert isinstance(q, LoraDense)
  a, b = (h[...] for h in q.hoisted)
  lead = (model.cfg.n_layers,) if scan else ()
  assert a.shape == lead + (3, q.base.kernel.shape[-2], 4) and b.shape == lead + (3, 4, q.base.kernel.shape[-1])
  np.testing.assert_allclose(logits(model, adapter_ids=ids), before, atol=1e-6, rtol=0)


def test_padded_ranks_are_exact():
  """Ranks 1, 2 and 8 (and different scalings) on one module: the smaller ones are zero-padded to 8."""
  model = model_with([{"r": 1, "alpha": 3.0, "targets": "qv"}, {"r": 2, "rslora": True, "targets": "qv"},
                      {"r": 8, "alpha": 16.0, "targets": "qv"}])
  ids = jnp.asarray([0, 1, 2, -1, 2, 1, 0, 0], jnp.int32)
  mixed = logits(model, adapter_ids=ids)
  np.testing.assert_allclose(mixed, alone(model, ids), atol=1e-5, rtol=0)
  # a batch that only uses the rank-1 adapter gives the same rows whether or not the others are stacked with it
  np.testing.assert_allclose(logits(model, adapter_ids=jnp.zeros(B, jnp.int32)), logits(model, adapter="a0"),
                             atol=1e-6, rtol=0)
  m = next(m for _, m in nnx.iter_modules(model) if isinstance(m, LoraDense))
  x = jax.random.normal(jax.random.key(3), (B, T, m.base.d_in))
  lone = LoraDense(m.base)  # the same rank-1 adapter on a module that holds only it
  lone.lora["a0"], lone.names, lone.ids = m.lora["a0"], ("a0",), (0,)
  zeros = jnp.zeros(B, jnp.int32)
  np.testing.assert_allclose(np.asarray(m(x, {"adapter_ids": zeros})), np.asarray(lone(x, {"adapter_ids": zeros})),
                             atol=1e-6, rtol=0)


def test_dora_falls_back_to_masked_path_and_merged_raises():
  model = model_with([{"r": 4, "targets": "qv"}, {"r": 4, "targets": "qv", "dora": True}])
  assert not any(m._gatherable() for _, m in nnx.iter_modules(model) if isinstance(m, LoraDense))
  ids = adapter_ids(2)
  np.testing.assert_allclose(logits(model, adapter_ids=ids), alone(model, ids), atol=1e-5, rtol=0)
  plain = model_with([{"r": 4, "targets": "qv"}] * 2)
  peft.lora.merge(plain, "a0")
  with pytest.raises(ValueError, match="merged"):
    logits(plain, adapter_ids=ids)


def test_dropout_in_training_uses_one_mask_per_example():
  model = model_with([{"r": 4, "targets": "qv", "dropout": 0.5}] * 3)
  assert all(m._gatherable() for _, m in nnx.iter_modules(model) if isinstance(m, LoraDense))
  ids = adapter_ids(3)
  train = logits(model, adapter_ids=ids)
  evaluation = logits(nnx.view(model, deterministic=True, raise_if_not_found=False), adapter_ids=ids)
  assert np.isfinite(train).all() and np.abs(train - evaluation).max() > 1e-4
  mixed_rates = model_with([{"r": 4, "targets": "qv", "dropout": 0.5}, {"r": 4, "targets": "qv", "dropout": 0.1}])
  assert not any(m._gatherable() for _, m in nnx.iter_modules(mixed_rates) if isinstance(m, LoraDense))
