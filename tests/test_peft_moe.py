"""Mixture of LoRA experts and task-gated adapters: routing, load balancing, identity, mixed-task batches."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from flax import nnx
from peft_test_utils import randomize, tokens
from transformers.models.mixtral.modeling_mixtral import load_balancing_loss_func

from lightft_jax import peft
from lightft_jax.models import Transformer, get_preset
from lightft_jax.models.layers import Dense
from lightft_jax.peft.moe import MoELoRA, MoEParam, TaskEmbedding, load_balancing_loss, top_k_gates

LLAMA = get_preset("tiny-llama", d_model=32, n_layers=1, n_heads=4, n_kv_heads=2, d_ff=64, vocab_size=64,
                   max_positions=32)
FROZEN = nnx.All(nnx.Param, nnx.Not(peft.PeftParam))




def test_load_balancing_loss_by_hand_and_against_transformers():
  logits = np.log(np.array([[0.7, 0.2, 0.1], [0.1, 0.6, 0.3], [0.5, 0.1, 0.4], [0.2, 0.3, 0.5]], np.float32))
  probs = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)  # the rows above
  # top-1: experts 0,1,0,2 -> f = [2/4, 1/4, 1/4]; P = column means = [0.375, 0.3, 0.325]
  f1, p = np.array([0.5, 0.25, 0.25]), probs.mean(0)
  np.testing.assert_allclose(p, [0.375, 0.3, 0.325], atol=1e-6)
  hand1 = 3 * (f1 @ p)  # = 3 * (0.1875 + 0.075 + 0.08125) = 1.03125
  # top-2: {0,1}, {1,2}, {0,2}, {2,1} -> counts [2, 3, 3] / 4
  hand2 = 3 * (np.array([0.5, 0.75, 0.75]) @ p)
  for k, hand in ((1, hand1), (2, hand2)):
    _, pr, sel = top_k_gates(jnp.asarray(logits), k)
    ours = float(load_balancing_loss(pr, sel))
    theirs = float(load_balancing_loss_func((torch.tensor(logits),), num_experts=3, top_k=k))
    np.testing.assert_allclose(ours, hand, rtol=1e-6)
    np.testing.assert_allclose(theirs, hand, rtol=1e-6)
  np.testing.assert_allclose(hand1, 1.03125, rtol=1e-6)


def test_top_k_gates_use_exactly_k_experts():
  logits = jax.random.normal(jax.random.key(0), (5, 7, 6))
  for k in (1, 2, 4):
    gates, probs, selected = top_k_gates(logits, k)
    np.testing.assert_array_equal((gates > 0).sum(-1), k)
    np.testing.assert_allclose(gates.sum(-1), 1.0, rtol=1e-6)
    np.testing.assert_array_equal(selected, gates > 0)
    kth = jnp.sort(logits, -1)[..., -k]
    np.testing.assert_array_equal(gates > 0, logits >= kth[..., None])  # the k largest logits


def _moe_dense(router, k=2, coef=1.0, n_tasks=3):
  cfg = LLAMA
  rngs = nnx.Rngs(0)
  dense = Dense(8, 5, axes=("embed", "mlp"), use_bias=True, cfg=cfg, rngs=rngs)
  table = TaskEmbedding(n_tasks, 4, rngs) if router == "task" else None
  moe = MoELoRA(dense, n_experts=4, top_k=k, r=2, alpha=4.0, router=router, task_embed=table, condition_dim=3,
                aux_loss_coef=coef, rngs=rngs)
  moe.lora_b[...] = jax.random.normal(jax.random.key(5), moe.lora_b.shape)
  return moe


@pytest.mark.parametrize("router", ["token", "task"])
def test_moe_layer_matches_numpy_and_sows_the_balancing_loss(router):
  moe = _moe_dense(router, coef=0.5)
  x = jax.random.normal(jax.random.key(1), (3, 4, 8))
  ctx = {"task_ids": jnp.array([2, 0, 2])}
  y = moe(x, ctx)
  a, b, w = (np.asarray(v[...], np.float64) for v in (moe.lora_a, moe.lora_b, moe.router))
  xn = np.asarray(x, np.float64)
  z = xn if router == "token" else np.asarray(moe.task_embed.embedding[...], np.float64)[[2, 0, 2]][:, None]
  logits = np.broadcast_to(z @ w, (3, 4, 4))
  top = np.argsort(-logits, -1)[..., :2]
  expected = np.asarray(moe.base(x), np.float64)
  for i in range(3):
    for t in range(4):
      sel = top[i, t]
      g = np.exp(logits[i, t, sel]) / np.exp(logits[i, t, sel]).sum()
      expected[i, t] += 2.0 * sum(gj * (xn[i, t] @ a[e] @ b[e]) for gj, e in zip(g, sel))
  np.testing.assert_allclose(y, expected, atol=1e-5)
  # Routing units: tokens for the token router, examples for the task router.
  units = logits.reshape(-1, 4) if router == "token" else logits[:, 0]
  sel = np.argsort(-units, -1)[:, :2]
  counts = np.stack([np.isin(np.arange(4), s) for s in sel]).mean(0)
  probs = np.exp(units) / np.exp(units).sum(-1, keepdims=True)
  sown = nnx.pop(moe, nnx.Intermediate)["aux_loss"].value
  assert len(sown) == 1
  np.testing.assert_allclose(sown[0], 0.5 * 4 * counts @ probs.mean(0), rtol=1e-5)


def test_unselected_experts_do_not_change_the_output():
  moe = _moe_dense("task", k=1, coef=0.0)
  x = jax.random.normal(jax.random.key(1), (2, 3, 8))
  ctx = {"task_ids": jnp.array([1, 1])}
  y = moe(x, ctx)
  gates, _, _ = top_k_gates(moe.router_logits(x, ctx), 1)
  chosen = int(jnp.argmax(gates[0]))
  b = moe.lora_b[...]
  moe.lora_b[...] = b.at[jnp.arange(4) != chosen].add(1.0)
  np.testing.assert_array_equal(moe(x, ctx), y)
  moe.lora_b[...] = b.at[chosen].add(1.0)
  assert np.abs(np.asarray(moe(x, ctx) - y)).max() > 1e-3


COMPOSITIONS = {  # disjoint targets, so one model (and one compile) covers several methods
    "task_router+gated_adapter": [
        {"method": "moe_lora", "n_tasks": 3, "r": 2, "task_dim": 4, "targets": "attn"},
        {"method": "task_gated_adapter", "n_tasks": 3, "n_adapters": 2, "reduction_factor": 8}],
    "token_router+condition_router": [
        {"method": "moe_lora", "router": "token", "r": 2, "top_k": 1, "targets": "qv"},
        {"method": "moe_lora", "router": "condition", "condition_dim": 5, "r": 2, "targets": "mlp"}],
}
run_lm = nnx.jit(lambda m, x, ctx: m(x, ctx=ctx)["logits"])


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if "token" in n else n for n in COMPOSITIONS])
def test_identity_at_init_and_mixed_task_batches(name):
  model = Transformer(LLAMA, rngs=nnx.Rngs(0))
  ids = tokens(3, 5)
  task_ids = jnp.array([2, 0, 1])
  cond = jax.random.normal(jax.random.key(2), (3, 5))
  ctx_of = lambda sl: {"task_ids": task_ids[sl], "condition": cond[sl]}
  before = run_lm(model, ids, ctx_of(slice(None)))
  peft.apply(model, COMPOSITIONS[name])
  np.testing.assert_allclose(run_lm(model, ids, ctx_of(slice(None))), before, atol=1e-6, rtol=0)
  randomize(model, MoEParam)
  mixed = run_lm(model, ids, ctx_of(slice(None)))
  # Reference: the whole batch under example i's task / condition (rows are independent, so row i is
  # example i alone); same shapes as the mixed call, so no extra compile.
  alone = [run_lm(model, ids, {k: jnp.broadcast_to(v[i], v.shape) for k, v in ctx_of(slice(None)).items()})[i]
           for i in range(3)]
  np.testing.assert_allclose(mixed, jnp.stack(alone), atol=1e-5, rtol=1e-5)
  assert np.abs(np.asarray(mixed - before)).max() > 1e-4
  nnx.pop(model, nnx.Intermediate)


def test_only_moe_parameters_get_gradients_and_the_aux_loss_trains_the_router():
  model = Transformer(LLAMA, rngs=nnx.Rngs(0))
  peft.apply(model, {"method": "moe_lora", "n_tasks": 3, "r": 2, "task_dim": 4})
  ids, ctx = tokens(2, 5), {"task_ids": jnp.array([0, 0])}
  graphdef, trainable, rest = nnx.split(model, peft.trainable_filter(model), ...)
  assert all(isinstance(v, MoEParam) for _, v in nnx.to_flat_state(trainable))

  def aux_only(tr):
    m = nnx.merge(graphdef, tr, rest)
    m(ids, ctx=ctx)
    return sum(jax.tree.leaves(nnx.pop(m, nnx.Intermediate)))

  g = {".".join(map(str, p)): np.asarray(v[...]) for p, v in nnx.to_flat_state(jax.grad(aux_only)(trainable))}
  assert np.abs(g["cond_moe.embedding"][0]).max() > 0 and np.abs(g["cond_moe.embedding"][1:]).max() == 0
  routers = [k for k in g if k.endswith(".router")]
  assert routers and all(np.abs(g[k]).max() > 0 for k in routers)
  experts = [k for k in g if k.endswith((".lora_a", ".lora_b"))]
  assert experts and all(np.abs(g[k]).max() == 0 for k in experts)  # the balancing loss only moves routing


def _trainable_count(cfg, peft_cfg):
  model = nnx.eval_shape(lambda: peft.apply(Transformer(cfg, task="base", rngs=nnx.Rngs(0)), peft_cfg))
  return peft.param_counts(model)[0]


def test_parameter_counts_match_formulas_on_roberta_base():
  cfg = get_preset("roberta-base")
  d, sites, e, r, n_tasks, t = 768, 24, 4, 8, 6, 32  # query and value of 12 layers
  assert _trainable_count(cfg, {"method": "moe_lora", "n_tasks": n_tasks}) == \
      sites * (e * r * (d + d) + t * e) + n_tasks * t
  assert _trainable_count(cfg, {"method": "moe_lora", "router": "token"}) == sites * (e * r * 2 * d + d * e)
  m, a = d // 16, 2
  assert _trainable_count(cfg, {"method": "task_gated_adapter", "n_tasks": n_tasks, "n_adapters": a}) == \
      sites * a * (d * m + m + m * d + d + n_tasks)


@pytest.mark.parametrize("opts,match", [
    ({"method": "moe_lora", "n_tasks": 2, "top_k": 5}, r"top_k must be in 1..n_experts=4"),
    ({"method": "moe_lora", "router": "expert_choice"}, "router='expert_choice'; choose from"),
    ({"method": "moe_lora"}, "needs n_tasks > 0"),
    ({"method": "moe_lora", "router": "condition"}, "needs condition_dim > 0"),
    ({"method": "moe_lora", "router": "token", "r": 0}, "must be > 0"),
    ({"method": "task_gated_adapter", "n_tasks": 2, "gate": "hard"}, "gate='hard'; choose from"),
    ({"method": "task_gated_adapter"}, "needs n_tasks > 0"),
])
def test_bad_configs_fail_with_clear_errors(opts, match):
  with pytest.raises(ValueError, match=match):
    peft.apply(Transformer(LLAMA, rngs=nnx.Rngs(0)), opts)
