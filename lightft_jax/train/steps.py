"""Sharded, jitted train and eval steps over the trainable part of an NNX model.

The model is split once into (graphdef, trainable params, frozen params, other state). The train state is
a pure-dict pytree {"step", "params", "opt_state", "rng"}: only trainable parameters get gradients and
optimizer state; the frozen parameters are a separate, sharded, never-donated argument (one copy, reused
every step). Both steps are `jax.jit`ted with explicit in/out shardings; the train state is donated.

The train step never applies a non-finite update: when the loss, the gradient norm or any update is NaN or
infinite, it keeps the old parameters and optimizer state (only `step` advances) and reports `ok=False`.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from lightft_jax.kinds import get_kind
from lightft_jax.models.extensions import AuxLoss
from lightft_jax.models.quant import QuantizedWeight
from lightft_jax.train import sharding as shd

FROZEN = nnx.Any(nnx.Param, QuantizedWeight)  # frozen weights (float or quantized): sharded, never donated
MODEL_INPUTS = ("input_ids", "attention_mask", "token_type_ids", "positions", "decoder_input_ids",
                "decoder_attention_mask", "segment_ids")
TARGETS = ("labels", "start_positions", "end_positions", "weights", "choice_ids")


class PureState:
  """Converts between an nnx.State and its pure-dict tree (same leaf order), traceable inside jit."""

  def __init__(self, state: nnx.State):
    self.pure = nnx.to_pure_dict(state)
    self.treedef = jax.tree.structure(state)
    state_paths = [p for p, _ in jax.tree_util.tree_flatten_with_path(state)[0]]
    pure_paths = [p for p, _ in jax.tree_util.tree_flatten_with_path(self.pure)[0]]
    if [tuple(str(k) for k in p[:len(q)]) for p, q in zip(state_paths, pure_paths)] != \
        [tuple(str(k) for k in q) for q in pure_paths]:
      raise AssertionError("nnx.State and its pure dict flatten in different orders")

  def to_state(self, pure: Any) -> nnx.State:
    return jax.tree.unflatten(self.treedef, jax.tree.leaves(pure))


def split_inputs(batch: dict) -> tuple[dict, dict | None]:
  """Model keyword inputs, and the per-call `ctx` (every other non-target key, e.g. task_ids)."""
  inputs = {k: v for k, v in batch.items() if k in MODEL_INPUTS}
  ctx = {k: v for k, v in batch.items() if k not in MODEL_INPUTS and k not in TARGETS}
  return inputs, ctx or None


Objective = Callable[[nnx.Module, dict, bool], tuple[jax.Array, dict]]
"""(model, batch, train) -> (scalar loss, aux with "predictions" and the "weight" the loss averaged over)."""

GradientEstimator = Callable[[Callable, Any, dict, jax.Array], tuple[jax.Array, Any]]
"""(loss_of, params, batch, rng) -> (loss, gradient): what the optimizer is given each step, from
`loss_of(params, batch, rng) -> scalar`. The default is `jax.value_and_grad(loss_of)`; first-order
meta-learning (`lightft_jax.icl.meta`) adapts on each task's support set and returns a meta-gradient."""


def kind_objective(kind: str) -> Objective:
  """The supervised objective of a task kind: the model on the batch's inputs (other batch keys, e.g.
  `task_ids`, as its `ctx`), then the kind's loss (`lightft_jax.kinds`)."""
  spec = get_kind(kind)

  def objective(model, batch, train):
    inputs, ctx = split_inputs(batch)
    return spec.loss_and_predictions(model(**inputs, ctx=ctx), batch)

  return objective


@dataclasses.dataclass(frozen=True)
class ModelParts:
  """An NNX model split once into graph definitions (train and eval mode) and pure-dict states."""

  graphdef: Any
  eval_graphdef: Any
  params: PureState
  frozen: PureState
  rest: PureState

  def merge(self, params: Any, frozen: Any, rest: Any, *, train: bool = True) -> nnx.Module:
    graphdef = self.graphdef if train else self.eval_graphdef
    return nnx.merge(graphdef, self.params.to_state(params), self.frozen.to_state(frozen),
                     self.rest.to_state(rest))


@dataclasses.dataclass
class Program:
  """Everything needed to run steps: model pieces, shardings, optimizer, jitted steps. Built whole by
  `build_program`. `kind` names the task kind whose evaluator `train.evaluate` uses (None for objectives
  that bring their own evaluation)."""

  mesh: Mesh
  kind: str | None
  tx: optax.GradientTransformation
  parts: ModelParts
  state_shardings: Any
  frozen_shardings: Any
  batch_sharding: NamedSharding
  train_step: Callable
  eval_step: Callable
  accum_steps: int = 1

  @property
  def params(self) -> PureState:
    return self.parts.params

  @property
  def frozen(self) -> PureState:
    return self.parts.frozen

  @property
  def rest(self) -> PureState:
    return self.parts.rest

  def model(self, params: Any, frozen: Any, rest: Any, *, train: bool = True) -> nnx.Module:
    return self.parts.merge(params, frozen, rest, train=train)


def build_program(model: nnx.Module, trainable_filter, tx: optax.GradientTransformation, *, mesh: Mesh,
                  kind: str | None = None, objective: Objective | None = None,
                  gradient: GradientEstimator | None = None, rules=shd.DEFAULT_RULES,
                  accum_steps: int = 1) -> Program:
  """Splits `model`, derives every sharding from logical axis names and jits the steps.

  The loss is `objective`, or the task kind's (`kind_objective(kind)`) when only `kind` is given;
  `gradient` replaces the plain gradient of that loss (see `GradientEstimator`).
  """
  if objective is None:
    if kind is None:
      raise ValueError("build_program needs a task kind or an objective")
    objective = kind_objective(kind)
  model.train()
  graphdef, params, frozen, rest = nnx.split(model, trainable_filter, FROZEN, ...)
  model.eval()
  eval_graphdef = nnx.graphdef(model)
  model.train()
  parts = ModelParts(graphdef, eval_graphdef, PureState(params), PureState(frozen), PureState(rest))
  p_specs, f_specs = shd.state_specs(params, mesh, rules), shd.state_specs(frozen, mesh, rules)
  pure_params = parts.params.pure
  opt_specs = optimizer_specs(jax.eval_shape(tx.init, pure_params), pure_params, p_specs)
  state_specs = {"step": P(), "params": p_specs, "opt_state": opt_specs, "rng": P()}
  state_shardings, frozen_shardings = shd.named(mesh, state_specs), shd.named(mesh, f_specs)
  batch_sharding = NamedSharding(mesh, shd.batch_spec(mesh, rules))
  train_step, eval_step = _jit_steps(parts, objective, gradient or _plain_gradient(accum_steps), tx, mesh,
                                     state_shardings, frozen_shardings, batch_sharding)
  return Program(mesh=mesh, kind=kind, tx=tx, parts=parts, state_shardings=state_shardings,
                 frozen_shardings=frozen_shardings, batch_sharding=batch_sharding, train_step=train_step,
                 eval_step=eval_step, accum_steps=accum_steps)


def optimizer_specs(opt_state: Any, params: Any, param_specs: Any) -> Any:
  """PartitionSpecs for optimizer state: a leaf whose key path ends with a parameter's path and has its
  shape (Adam moments, momentum) takes that parameter's spec; anything else (counts, factored) replicates."""
  table = {}
  for (path, x), spec in zip(jax.tree_util.tree_flatten_with_path(params)[0], jax.tree.leaves(
      param_specs, is_leaf=lambda s: isinstance(s, P))):
    table[tuple(jax.tree_util.keystr((k,)) for k in path)] = (x.shape, spec)

  def spec_of(path, leaf):
    keys = tuple(jax.tree_util.keystr((k,)) for k in path)
    for i in range(len(keys)):
      shape, spec = table.get(keys[i:], (None, None))
      if shape is not None:
        return spec if shape == getattr(leaf, "shape", None) else P()
    return P()

  return jax.tree_util.tree_map_with_path(spec_of, opt_state)


def _loss_fn(parts: ModelParts, objective: Objective, params, frozen, rest, batch, rng, train: bool):
  model = parts.merge(params, frozen, rest, train=train)
  if train and rng is not None:
    nnx.reseed(model, default=rng, policy="match_shape")  # scanned stacks hold one key per layer [L]
  loss, aux = objective(model, batch, train)
  # Auxiliary losses that modules sow as `AuxLoss` (models/extensions.py; e.g. mixture-of-experts load
  # balancing) join the training objective.
  aux_terms = jax.tree.leaves(nnx.pop(model, AuxLoss))
  if aux_terms and train:  # a training regulariser: eval loss and perplexity are the task loss alone
    aux["aux_loss"] = sum(jnp.sum(v) for v in aux_terms)
    loss = loss + aux["aux_loss"]
  return loss, aux


def _plain_gradient(k: int) -> GradientEstimator:
  """value_and_grad of the loss, averaged over `k` micro-batches (gradient accumulation) when k > 1."""
  def gradient(loss_of, params, batch, rng):
    grad_fn = jax.value_and_grad(loss_of)
    if k == 1:
      return grad_fn(params, batch, rng)
    micro = jax.tree.map(lambda x: x.reshape((k, x.shape[0] // k) + x.shape[1:]), batch)

    def body(carry, i):
      mb = jax.tree.map(lambda x: x[i], micro)
      return jax.tree.map(jnp.add, carry, grad_fn(params, mb, jax.random.fold_in(rng, i))), None

    zeros = (jnp.zeros((), jnp.float32), jax.tree.map(jnp.zeros_like, params))
    (loss, grads), _ = jax.lax.scan(body, zeros, jnp.arange(k))
    return loss / k, jax.tree.map(lambda g: g / k, grads)
  return gradient


def grad_norm(grads: Any) -> jax.Array:
  """Global L2 norm, each leaf's square sum written as a full contraction (a dot). With
  `optax.global_norm`'s square-then-sum, XLA:CPU shares the squares with AdamW's second moment,
  materialises them and reduces them in a separate pass (about 5% of a full fine-tuning step)."""
  return jnp.sqrt(sum(jnp.einsum("...,...->", g, g, preferred_element_type=jnp.float32)
                      for g in jax.tree.leaves(grads)))


def all_finite(tree: Any) -> jax.Array:
  """True when no leaf of `tree` holds a NaN or an infinity."""
  return jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)]))


def _jit_steps(parts: ModelParts, objective: Objective, gradient: GradientEstimator,
               tx: optax.GradientTransformation, mesh: Mesh, state_shardings, frozen_shardings, batch_sharding):
  def train_step(state, frozen, rest, batch):
    rng = jax.random.fold_in(state["rng"], state["step"])
    loss_of = lambda p, b, r: _loss_fn(parts, objective, p, frozen, rest, b, r, True)[0]
    loss, grads = gradient(loss_of, state["params"], batch, rng)
    updates, opt_state = tx.update(grads, state["opt_state"], state["params"])
    gnorm = grad_norm(grads)
    ok = jnp.isfinite(loss) & jnp.isfinite(gnorm) & all_finite(updates)
    keep = lambda new, old: jnp.where(ok, new, old)  # a non-finite step leaves params and optimizer as they were
    params = jax.tree.map(keep, optax.apply_updates(state["params"], updates), state["params"])
    opt_state = jax.tree.map(keep, opt_state, state["opt_state"])
    new = {"step": state["step"] + 1, "params": params, "opt_state": opt_state, "rng": state["rng"]}
    return new, {"loss": loss, "grad_norm": gnorm, "ok": ok}

  def eval_step(params, frozen, rest, batch):
    loss, aux = _loss_fn(parts, objective, params, frozen, rest, batch, None, False)
    out = {"loss_sum": loss * aux["weight"], "weight": aux["weight"], "predictions": aux["predictions"]}
    out.update({k: batch[k] for k in TARGETS if k in batch})  # global (replicated) targets for metrics
    return out

  repl = shd.replicated(mesh)
  rest_sh = jax.tree.map(lambda _: repl, parts.rest.pure)
  jtrain = jax.jit(train_step, in_shardings=(state_shardings, frozen_shardings, rest_sh, batch_sharding),
                   out_shardings=(state_shardings, repl), donate_argnums=(0,))
  jeval = jax.jit(eval_step, in_shardings=(state_shardings["params"], frozen_shardings, rest_sh, batch_sharding),
                  out_shardings=repl)
  return jtrain, jeval


def put(tree: Any, shardings: Any) -> Any:
  """Host or device values -> global arrays with `shardings` (works when the mesh spans several processes).

  A device array that already has the target sharding is returned as is, and one on this process's devices
  is moved with `jax.device_put`, so placing weights that are already on the accelerator makes no host
  round trip and no copy when nothing moves.
  """
  def one(x, s):
    if jax.dtypes.issubdtype(getattr(x, "dtype", None), jax.dtypes.prng_key):  # typed RNG keys (nnx Rngs)
      impl = jax.random.key_impl(x)
      return jax.random.wrap_key_data(one(jax.random.key_data(x), s), impl=impl)
    if isinstance(x, jax.Array):
      if x.sharding.is_equivalent_to(s, x.ndim):
        return x
      if x.is_fully_addressable and s.is_fully_addressable:
        return jax.device_put(x, s)
    x = np.asarray(jax.device_get(x))
    return jax.make_array_from_callback(x.shape, s, lambda idx: x[idx])
  if not isinstance(shardings, NamedSharding):
    return jax.tree.map(one, tree, shardings)
  return jax.tree.map(lambda x: one(x, shardings), tree)


def init_state(prog: Program, seed: int) -> dict:
  """Fresh train state, placed with its shardings."""
  params = put(prog.params.pure, prog.state_shardings["params"])

  def make(params):
    return {"step": jnp.zeros((), jnp.int32), "params": params, "opt_state": prog.tx.init(params),
            "rng": jax.random.PRNGKey(seed)}

  return jax.jit(make, in_shardings=(prog.state_shardings["params"],),
                 out_shardings=prog.state_shardings)(params)


def place_frozen(prog: Program, model: nnx.Module | None = None) -> tuple[Any, Any]:
  """(frozen params, other state) as device arrays with their shardings.

  The placed arrays replace the loaded ones in `prog` (and in `model`, when given), so that once placement
  moved anything, the unplaced copy of the frozen weights is no longer referenced and its memory is freed.
  """
  frozen = put(prog.frozen.pure, prog.frozen_shardings)
  rest = put(prog.rest.pure, shd.replicated(prog.mesh))
  prog.frozen.pure, prog.rest.pure = frozen, rest
  if model is not None:
    nnx.update(model, prog.frozen.to_state(frozen), prog.rest.to_state(rest))
  return frozen, rest


def params_digest(params: Any) -> str:
  """sha256 over (path, dtype, shape, bytes) of every parameter, in sorted path order."""
  import hashlib
  from lightft_jax.train.optim import param_paths
  h = hashlib.sha256()
  paths, leaves = jax.tree.leaves(param_paths(params)), jax.tree.leaves(params)
  for path, x in sorted(zip(paths, leaves), key=lambda t: t[0]):
    a = np.ascontiguousarray(np.asarray(jax.device_get(x)))
    h.update(f"{path}|{a.dtype.str}|{a.shape}|".encode())
    h.update(a.tobytes())
  return h.hexdigest()
