"""The model's declared extension points (models/extensions.py): methods written here, in a few lines and without
any edit of models/, attach through `Transformer.input_transform`, `Attention.extra_kv` and `AuxLoss`, and
change the outputs exactly as their definitions say."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from flax import nnx

from lightft_jax import peft
from lightft_jax.models import Transformer, generate, get_preset
from lightft_jax.models.extensions import AuxLoss, ExtraKV, InputTransform, Inputs
from lightft_jax.models.generate import prefix_cache
from lightft_jax.models.layers import Dense
from lightft_jax.train import losses, sharding as shd, steps

GPT2 = get_preset("tiny-gpt2", d_model=32, n_heads=2, d_ff=64, vocab_size=64, max_positions=32, n_layers=2)
BERT = get_preset("tiny-bert", d_model=32, n_heads=2, d_ff=64, vocab_size=64, max_positions=32, n_layers=2)
IDS = jnp.asarray(np.random.default_rng(0).integers(1, 64, (2, 6)), jnp.int32)
TASKS = jnp.array([0, 1])


class TaskToken(nnx.Module):
  """A toy input-side method: one learned token per task, chosen per example by ctx["task_ids"], before the
  input (a conditional prompt of length 1)."""

  def __init__(self, n_tasks: int, d: int, rngs: nnx.Rngs):
    self.table = peft.PeftParam(jax.random.normal(rngs.params(), (n_tasks, d)))

  added_length = 1

  def __call__(self, inputs: Inputs, ctx=None) -> Inputs:
    x, mask, token_types, positions = inputs
    tok = jnp.take(self.table[...], ctx["task_ids"], axis=0)[:, None].astype(x.dtype)
    ones = jnp.ones((x.shape[0], 1), mask.dtype)
    tt = None if token_types is None else jnp.concatenate([jnp.zeros_like(token_types[:, :1]), token_types], 1)
    return Inputs(jnp.concatenate([tok, x], 1), jnp.concatenate([ones, mask], 1), tt, positions)


class FrozenContext(nnx.Module):
  """A toy key/value method: every query of one layer also attends a fixed context's keys/values [P,K,Dh]."""

  def __init__(self, k: jax.Array, v: jax.Array):
    self.k, self.v = nnx.Variable(k), nnx.Variable(v)

  @property
  def num_slots(self) -> int:
    return self.k.shape[0]

  def __call__(self, batch_size: int, ctx=None):
    k, v = self.k[...], self.v[...]
    return jnp.broadcast_to(k, (batch_size,) + k.shape), jnp.broadcast_to(v, (batch_size,) + v.shape)


class PenalisedDense(nnx.Module):
  """A toy wrapper that sows an auxiliary loss: coef * mean(y^2) of its output."""

  def __init__(self, base: Dense, coef: float):
    self.base, self.coef = base, coef

  def __call__(self, x, ctx=None):
    y = self.base(x, ctx)
    self.sow(AuxLoss, "penalty", self.coef * jnp.mean(jnp.square(y.astype(jnp.float32))))
    return y


def test_a_toy_input_transform_attaches_without_a_model_edit():
  model = Transformer(GPT2, task="lm", rngs=nnx.Rngs(0))
  plain = model(IDS)["logits"]
  model.input_transform = TaskToken(2, GPT2.d_model, nnx.Rngs(1))
  assert isinstance(model.input_transform, InputTransform)
  out = model(IDS, ctx={"task_ids": TASKS})
  # The definition: the task's token before the embedded input; outputs aligned with the caller's tokens.
  tok = model.input_transform.table[...][TASKS][:, None]
  embeds = jnp.concatenate([tok, model.embed.tokens(IDS)], 1)
  ref = _without_transform(model)(inputs_embeds=embeds)
  assert out["logits"].shape == plain.shape and out["hidden_states"].shape == (2, 6, GPT2.d_model)
  np.testing.assert_allclose(out["logits"], ref["logits"][:, 1:], atol=1e-5)
  assert np.abs(np.asarray(out["logits"] - plain)).max() > 1e-3
  other = model(IDS, ctx={"task_ids": 1 - TASKS})["logits"]
  assert np.abs(np.asarray(other - out["logits"])).max() > 1e-3  # the token depends on the task
  # generate applies it to the prompt and counts the added position: its first step is the full forward's.
  tokens, logits = generate(model, IDS, max_new_tokens=2, ctx={"task_ids": TASKS}, return_logits=True)
  np.testing.assert_allclose(logits[:, 0], out["logits"][:, -1], atol=1e-5)
  assert int(tokens[0, 0]) == int(jnp.argmax(out["logits"][0, -1]))
  # Only the method's parameters train.
  assert [p for p, v in nnx.iter_graph(model) if isinstance(v, peft.PeftParam)] == [("input_transform", "table")]


def _without_transform(model):
  clone = nnx.clone(model)
  clone.input_transform = None
  return clone


def test_a_toy_input_transform_on_an_encoder_classifier():
  model = Transformer(BERT, task="classification", num_labels=3, rngs=nnx.Rngs(0))
  model.input_transform = TaskToken(2, BERT.d_model, nnx.Rngs(1))
  tt = jnp.ones_like(IDS)
  out = model(IDS, token_type_ids=tt, ctx={"task_ids": TASKS})
  tok = model.input_transform.table[...][TASKS][:, None]
  ref = _without_transform(model)(inputs_embeds=jnp.concatenate([tok, model.embed.tokens(IDS)], 1),
                                  token_type_ids=jnp.concatenate([jnp.zeros((2, 1), tt.dtype), tt], 1))
  np.testing.assert_allclose(out["logits"], ref["logits"], atol=1e-5)  # a sequence head sees the added token
  np.testing.assert_allclose(out["hidden_states"], ref["hidden_states"][:, 1:], atol=1e-5)


def test_a_toy_extra_kv_method_equals_the_context_in_the_input():
  """Each layer's FrozenContext holds a context's cached keys/values; the input then reads as if the context
  came before it (at positions 0..P-1, the input at P..)."""
  model = Transformer(GPT2, task="lm", rngs=nnx.Rngs(0))
  context = [5, 9, 17, 3]
  p = len(context)
  cache = prefix_cache(model, context)  # k, v [L,1,P,K,Dh]
  for i, block in enumerate(model.decoder.layers):
    block.attn.extra_kv = FrozenContext(cache["k"][i, 0], cache["v"][i, 0])
    assert isinstance(block.attn.extra_kv, ExtraKV)
  positions = jnp.broadcast_to(p + jnp.arange(IDS.shape[1]), IDS.shape)
  out = model(IDS, positions=positions)["logits"]
  full = _without_extra_kv(model)(jnp.concatenate([jnp.asarray([context] * 2), IDS], 1))["logits"]
  np.testing.assert_allclose(out, full[:, p:], atol=1e-5)


def _without_extra_kv(model):
  clone = nnx.clone(model)
  for block in clone.decoder.layers:
    block.attn.extra_kv = None
  return clone


def test_a_sown_aux_loss_joins_the_train_loss():
  model = Transformer(GPT2, task="lm", rngs=nnx.Rngs(0))
  model.decoder.layers[0].mlp.down = PenalisedDense(model.decoder.layers[0].mlp.down, coef=3.0)
  ids = np.asarray(IDS)
  batch = {"input_ids": ids, "attention_mask": np.ones_like(ids), "labels": np.roll(ids, -1, 1)}
  task_loss, _ = losses.loss_and_predictions("lm", model(IDS), batch)
  sown = nnx.pop(model, AuxLoss)
  penalty = float(sum(jnp.sum(v) for v in jax.tree.leaves(sown)))
  assert penalty > 0 and all(isinstance(v, AuxLoss) for v in jax.tree.leaves(sown, is_leaf=lambda x: isinstance(
      x, nnx.Variable)))
  mesh = shd.make_mesh(1, 1, 1, devices=jax.devices()[:1])
  prog = steps.build_program(model, nnx.Param, optax.sgd(0.0), kind="lm", mesh=mesh)
  state = steps.init_state(prog, 0)
  frozen, rest = steps.place_frozen(prog)
  _, metrics = prog.train_step(state, frozen, rest, shd.global_batch(batch, mesh))
  np.testing.assert_allclose(float(metrics["loss"]), float(task_loss) + penalty, rtol=1e-5)


def test_peft_methods_use_the_declared_slots():
  model = Transformer(GPT2, task="lm", rngs=nnx.Rngs(0))
  peft.apply(model, ml_collections.ConfigDict({"method": "prefix", "num_tokens": 3}))
  assert all(isinstance(b.attn.extra_kv, ExtraKV) and b.attn.extra_kv.num_slots == 3 for b in model.decoder.layers)
  model = Transformer(GPT2, task="lm", rngs=nnx.Rngs(0))
  peft.apply(model, ml_collections.ConfigDict({"method": "prompt", "num_tokens": 3}))
  assert isinstance(model.input_transform, InputTransform) and model.input_transform.added_length == 3
