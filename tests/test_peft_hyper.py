"""Hypernetwork PEFT (HyperFormer++): identity at init, mixed-task batches, what trains, unseen conditions, counts."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx
from peft_test_utils import randomize, tokens

from lightft_jax import peft
from lightft_jax.models import Transformer, get_preset
from lightft_jax.peft.hyper import HyperLoRA, HyperParam

LLAMA = get_preset("tiny-llama", d_model=32, n_layers=1, n_heads=4, n_kv_heads=2, d_ff=64, vocab_size=64,
                   max_positions=32)
BERT = get_preset("tiny-bert", d_model=32, n_layers=1, n_heads=2, d_ff=64, vocab_size=64, max_positions=32)
T5 = get_preset("tiny-t5", d_model=32, n_layers=1, n_heads=2, head_dim=16, d_ff=64, vocab_size=64)
FROZEN = nnx.All(nnx.Param, nnx.Not(peft.PeftParam))
SMALL = dict(task_dim=8, site_dim=4, proj_hidden=16, proj_dim=8, r=2, reduction_factor=8, prefix_len=3)
ALL = ("adapter", "lora", "prefix", "ln")


def build(cfg, task="lm", **hyper):
  model = Transformer(cfg, task=task, rngs=nnx.Rngs(0))
  if hyper:
    peft.apply(model, {**SMALL, **hyper})
  return model



def forward(model, ids, ctx=None):
  kw = {"decoder_input_ids": ids[:, ::-1]} if model.cfg.arch == "encoder_decoder" else {}
  out = model(ids, ctx=ctx, **kw)
  return out["logits"] if "logits" in out else out["hidden_states"]



def test_fresh_hypernetwork_leaves_outputs_unchanged():
  model = build(T5)  # encoder + decoder (layer ids 0 and 1) with cross-attention: every kind of site
  ids = tokens(2, 6)
  run = nnx.jit(forward)
  before = run(model, ids)
  peft.apply(model, {**SMALL, "method": "hyper", "emit": ("adapter", "lora", "ln"), "n_tasks": 3})
  after = run(model, ids, {"task_ids": jnp.array([0, 2])})
  np.testing.assert_allclose(after, before, atol=1e-6, rtol=0)


@pytest.mark.parametrize("cfg,condition", [(LLAMA, "task"), pytest.param(BERT, "context", marks=pytest.mark.slow)],
                         ids=["llama-task", "bert-context"])
def test_mixed_task_batch_equals_each_example_alone(cfg, condition):
  extra = {"n_tasks": 3} if condition == "task" else {"condition_dim": 6}
  model = build(cfg, "lm" if cfg.arch != "encoder" else "base", method="hyper", emit=ALL, condition=condition,
                **extra)
  randomize(model, HyperParam)
  ids = tokens(4, 5)
  key = "task_ids" if condition == "task" else "condition"
  per_example = jnp.array([2, 0, 1, 2]) if condition == "task" else jax.random.normal(jax.random.key(3), (4, 6))
  run = nnx.jit(forward)
  mixed = run(model, ids, {key: per_example})
  # Reference: the whole batch under one example's own task (rows are independent, so row i is example i
  # alone); same shapes as the mixed call, so no extra compile.
  alone = [run(model, ids, {key: jnp.broadcast_to(per_example[i], per_example.shape)}) for i in range(4)]
  np.testing.assert_allclose(mixed, jnp.stack([a[i] for i, a in enumerate(alone)]), atol=1e-5, rtol=1e-5)
  assert np.abs(np.asarray(alone[0][0] - alone[1][0])).max() > 1e-4  # different tasks, different weights


@pytest.mark.slow
def test_generated_prefix_works_with_kv_cache_decoding():
  model = build(LLAMA, method="hyper_prefix", n_tasks=2)
  randomize(model, HyperParam)
  ids, ctx = tokens(2, 6), {"task_ids": jnp.array([1, 0])}
  full = model(ids, ctx=ctx)["logits"]
  step = nnx.jit(lambda m, x, cache: m(x, jnp.ones((2, 6), jnp.int32), cache=cache, ctx=ctx))
  out = step(model, ids[:, :4], model.init_cache(2, 6))
  logits = [out["logits"]]
  for t in (4, 5):
    out = step(model, ids[:, t:t + 1], out["cache"])
    logits.append(out["logits"])
  np.testing.assert_allclose(jnp.concatenate(logits, 1), full, atol=1e-5, rtol=1e-5)


def lm_loss(model, ids, ctx):
  logits = model(ids, ctx=ctx)["logits"][:, :-1]
  return optax.softmax_cross_entropy_with_integer_labels(logits, ids[:, 1:]).mean()


def test_gradients_reach_only_generator_and_task_embeddings():
  model = build(LLAMA, method="hyper", emit=ALL, n_tasks=3)
  ids, ctx = tokens(2, 6), {"task_ids": jnp.array([0, 2])}
  graphdef, trainable, frozen = nnx.split(model, peft.trainable_filter(model), ...)
  flat = nnx.to_flat_state(trainable)
  assert flat and all(isinstance(v, HyperParam) for _, v in flat)
  assert all(p[0] == "cond_hyper" for p, _ in flat)
  grad_fn = jax.jit(jax.grad(lambda tr: lm_loss(nnx.merge(graphdef, tr, frozen), ids, ctx)))

  # From a fresh (identity) start the zero-initialised output generators already get gradients.
  g = {".".join(map(str, p)): np.asarray(v[...]) for p, v in nnx.to_flat_state(grad_fn(trainable))}
  for name in ("adapter_up", "lora_b", "ln_scale", "ln_shift", "prefix_k", "prefix_v"):
    assert np.abs(g[f"cond_hyper.gen.{name}.kernel"]).max() > 0, name

  randomize(model, HyperParam)
  graphdef, trainable, frozen = nnx.split(model, peft.trainable_filter(model), ...)
  frozen_before = jax.tree.map(np.array, nnx.state(model, FROZEN))
  g = {".".join(map(str, p)): np.asarray(v[...]) for p, v in nnx.to_flat_state(grad_fn(trainable))}
  assert all(np.abs(v).max() > 0 for k, v in g.items() if k != "cond_hyper.task_embed"), \
      [k for k, v in g.items() if np.abs(v).max() == 0]
  task_grad = np.abs(g["cond_hyper.task_embed"]).sum(-1)
  assert task_grad[0] > 0 and task_grad[2] > 0 and task_grad[1] == 0  # task 1 is not in the batch

  opt = optax.adam(1e-2)
  opt_state = opt.init(trainable)
  assert sum(x.size for x in jax.tree.leaves(opt_state)) == 2 * sum(x.size for x in jax.tree.leaves(trainable)) + 1
  new, start = trainable, jax.tree.map(np.array, trainable)
  for _ in range(2):
    updates, opt_state = opt.update(grad_fn(new), opt_state, new)
    new = optax.apply_updates(new, updates)
  nnx.update(model, new)
  jax.tree.map(np.testing.assert_array_equal, jax.tree.map(np.array, nnx.state(model, FROZEN)), frozen_before)
  assert all(not np.array_equal(a, b) for a, b in zip(jax.tree.leaves(new), jax.tree.leaves(start)))


def _np_projector(h, c, layer, block):
  """numpy reimplementation of the task projector for one site: I [B, proj_dim]."""
  p = lambda v: np.asarray(v[...], np.float64)
  site = np.concatenate([p(h.layer_embed)[layer], p(h.block_embed)[block]])
  z = np.concatenate([c, np.broadcast_to(site, (c.shape[0], site.size))], -1)
  z = np.maximum(z @ p(h.proj_hidden) + p(h.proj_hidden_bias), 0)
  return z @ p(h.proj_out) + p(h.proj_out_bias)


def test_unseen_condition_gets_generated_weights_without_a_gradient_step():
  model = build(BERT, "base", method="hyper_lora", condition="context", condition_dim=6, lora_targets="qv",
                init_std=0.3)
  conds = np.asarray(jax.random.normal(jax.random.key(0), (3, 6)))
  ids = tokens(2, 5)
  graphdef, trainable, frozen = nnx.split(model, peft.trainable_filter(model), ...)

  def loss(tr):  # pull task 0's hidden states up and task 1's down
    h = nnx.merge(graphdef, tr, frozen)(ids, ctx={"condition": jnp.asarray(conds[:2])})["hidden_states"]
    return h[1].mean() - h[0].mean()

  opt, grad_fn = optax.adam(0.1), jax.jit(jax.grad(loss))
  opt_state = opt.init(trainable)
  for _ in range(3):
    updates, opt_state = opt.update(grad_fn(trainable), opt_state, trainable)
    trainable = optax.apply_updates(trainable, updates)
  nnx.update(model, trainable)
  params_before = jax.tree.map(np.array, nnx.state(model, nnx.Param))  # base and hypernetwork

  unseen = conds[2:3]
  site = model.encoder.layers[0].attn.query
  assert isinstance(site, HyperLoRA)
  h = model.cond_hyper
  i = _np_projector(h, unseen, site.layer_id, site.block_id)
  gen = lambda name: (np.einsum("bp,p...->b...", i, np.asarray(h.gen[name].kernel[...], np.float64))
                      + np.asarray(h.gen[name].bias[...], np.float64))
  a, b = gen("lora_a")[0], gen("lora_b")[0]
  x = np.asarray(jax.random.normal(jax.random.key(1), (1, 4, 32)))
  expected = np.asarray(site.base(jnp.asarray(x))) + site.scale * (x @ a) @ b
  np.testing.assert_allclose(site(jnp.asarray(x), {"condition": jnp.asarray(unseen)}), expected, atol=1e-5)
  assert np.abs(expected - np.asarray(site.base(jnp.asarray(x)))).max() > 1e-2  # a real, non-zero update

  outs = [model(ids[:1], ctx={"condition": jnp.asarray(c[None])})["hidden_states"] for c in conds]
  assert np.abs(np.asarray(outs[2] - outs[0])).max() > 1e-5 and np.abs(np.asarray(outs[2] - outs[1])).max() > 1e-5
  jax.tree.map(np.testing.assert_array_equal, jax.tree.map(np.array, nnx.state(model, nnx.Param)), params_before)


def _trainable_count(cfg, peft_cfg):
  model = nnx.eval_shape(lambda: peft.apply(Transformer(cfg, task="base", rngs=nnx.Rngs(0)), peft_cfg))
  return peft.param_counts(model)[0]


def test_parameter_counts_match_formulas_on_roberta_base():
  cfg = get_preset("roberta-base")
  d, n_layers, n_tasks = 768, 12, 8
  t, s, hid, p = 64, 64, 128, 64  # task_dim, site_dim, proj_hidden, proj_dim defaults
  projector = lambda z: (z + 2 * s) * hid + hid + hid * p + p
  gen = lambda *sizes: (p + 1) * sum(sizes)  # kernel [p, size] + bias [size] per generated tensor
  m = d // 16
  # HyperFormer++: adapters after attention and FFN + conditional LayerNorm; 4 block types.
  adapters_ln = (n_tasks * t + (n_layers + 4) * s + projector(t)
                 + gen(d * m, m, m * d, d) + gen(d, d))
  assert _trainable_count(cfg, {"method": "hyper", "n_tasks": n_tasks}) == adapters_ln
  # Hyper-LoRA r=8 on query and value (2 block types).
  lora = n_tasks * t + (n_layers + 2) * s + projector(t) + gen(d * 8, 8 * d)
  assert _trainable_count(cfg, {"method": "hyper_lora", "n_tasks": n_tasks}) == lora
  # Context-conditioned prefix (MiniLM-sized condition, no task table): k and v of [P, heads, head_dim].
  prefix = (n_layers + 1) * s + projector(384) + gen(8 * d, 8 * d)
  assert _trainable_count(cfg, {"method": "hyper_prefix", "condition": "context", "condition_dim": 384}) == prefix


@pytest.mark.parametrize("opts,match", [
    ({"method": "hyper", "n_tasks": 2, "emit": ("adapter", "bitfit")}, "unknown kinds.*'bitfit'"),
    ({"method": "hyper"}, "needs n_tasks"),
    ({"method": "hyper", "condition": "context"}, "needs condition_dim"),
    ({"method": "hyper", "condition": "demos", "n_tasks": 2}, "condition='demos'.*choose from"),
    ({"method": "hyper_lora", "n_tasks": 2, "r": 0}, "rank r must be > 0"),
    ({"method": "hyper_lora", "n_tasks": 2, "lora_targets": "nothing_here"}, "match no Dense module"),
    ({"method": "hyper", "n_tasks": 2, "task_dims": 3}, "unknown option"),
])
def test_bad_configs_fail_with_clear_errors(opts, match):
  with pytest.raises(ValueError, match=match):
    peft.apply(Transformer(LLAMA, rngs=nnx.Rngs(0)), opts)


def test_bad_calls_fail_with_clear_errors():
  model = build(LLAMA, method="hyper_adapter", n_tasks=2)
  ids = tokens(2, 4)
  with pytest.raises(ValueError, match=r"needs per-example task ids.*task_ids"):
    model(ids)
  with pytest.raises(ValueError, match=r"task ids \[5\] out of range; valid ids are 0..1"):
    model(ids, ctx={"task_ids": jnp.array([0, 5])})
  with pytest.raises(ValueError, match="already attached"):
    peft.apply(model, {"method": "hyper_lora", "n_tasks": 2})
  ctx_model = build(LLAMA, method="hyper_adapter", condition="context", condition_dim=4)
  with pytest.raises(ValueError, match=r"must have shape \[B, 4\]"):
    ctx_model(ids, ctx={"condition": jnp.zeros((2, 5))})


@pytest.mark.slow
def test_context_encoder_mean_pools_minilm_like_transformers():
  torch = pytest.importorskip("torch")
  from transformers import AutoModel, AutoTokenizer

  from lightft_jax.models.assets import minilm_dir
  texts = ["Classify the sentiment of a movie review.", "Translate English to German: the house is small."]
  from lightft_jax.models.sentence import SentenceEncoder
  enc = peft.ContextEncoder(SentenceEncoder.load())
  ours = np.asarray(enc(texts))
  tok, ref = AutoTokenizer.from_pretrained(minilm_dir()), AutoModel.from_pretrained(minilm_dir()).eval()
  batch = tok(texts, padding=True, return_tensors="pt")
  with torch.no_grad():
    h = ref(**batch).last_hidden_state
  m = batch["attention_mask"][..., None].float()
  np.testing.assert_allclose(ours, ((h * m).sum(1) / m.sum(1)).numpy(), atol=1e-4)
  demos = np.asarray(enc.demonstrations([texts, texts[1:]]))
  np.testing.assert_allclose(demos, np.stack([ours.mean(0), ours[1]]), atol=1e-5)
  # The pooled description conditions a hypernetwork directly: an unseen task gets weights at once.
  model = build(BERT, "base", method="hyper_adapter", condition="context", condition_dim=enc.dim)
  out = model(tokens(2, 4), ctx={"condition": jnp.asarray(ours)})["hidden_states"]
  assert out.shape == (2, 4, 32) and np.isfinite(np.asarray(out)).all()
