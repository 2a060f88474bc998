"""Conditional computation: a mixture of LoRA experts with top-k routing, and per-task gated adapters.

`moe_lora` wraps each target Dense with E LoRA experts (A_e [Din,R] kaiming-uniform, B_e [R,Dout] zero, so a
fresh mixture leaves the model unchanged) and a router:

  router="task"       logits [B,E]   = task_embed[ctx["task_ids"]] @ W_r   (task embedding shared by all sites)
  router="condition"  logits [B,E]   = ctx["condition"] @ W_r
  router="token"      logits [B,T,E] = x @ W_r

Top-k gating keeps the k largest logits and renormalises their softmax, so exactly k experts carry weight:
  y = base(x) + alpha/r * sum_e g_e (x @ A_e) @ B_e.
Every call sows `aux_loss` = coef * E * sum_e f_e P_e as an `AuxLoss` (models/extensions.py), which the train
step adds to the training loss (Switch Transformer load balancing; f_e the fraction of routing units (examples
or tokens) that picked expert e among their top k, P_e the mean router probability; the same value as
`transformers`' Mixtral `load_balancing_loss_func`).

`task_gated_adapter` puts a bank of A bottleneck adapters at each site and a learned per-task gate
g[task, a] = sigmoid (or softmax over the bank) of a logit table [n_tasks, A]: y + sum_a g[task, a] adapter_a(y).

On scanned stacks (scan_layers=True) each site's experts, router, adapter bank and gates are stacked [L, ...]
(built per layer, `core.per_layer`); the shared task embedding is `LAYER_SHARED`; a site's load-balancing loss is
sown per layer ([L] values, whose sum the train step adds, as it adds the unrolled model's L scalars).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from flax import nnx

from lightft_jax.models.extensions import AuxLoss
from lightft_jax.models.layers import Ctx, Dense, activation
from lightft_jax.peft import core
from lightft_jax.peft.core import LAYER_SHARED, PeftParam, find_targets, register, replace_module
from lightft_jax.peft.hyper import ADAPTER_TARGETS, ctx_condition, ctx_task_ids

ROUTERS = ("task", "condition", "token")
GATES = ("sigmoid", "softmax")
ROOT_ATTR = "cond_moe"  # the shared task embedding of task routers; sorts before encoder/decoder


class MoEParam(PeftParam):
  """A parameter of a LoRA-expert mixture (experts, router, task embedding) or of a task-gated adapter bank."""


# ----------------------------------------------------------------------------- pure math

def top_k_gates(logits: jax.Array, k: int) -> tuple[jax.Array, jax.Array, jax.Array]:
  """logits [...,E] -> (gates, probs, selected), each [...,E].

  gates: softmax over the k largest logits, zero elsewhere (exactly k non-zero, summing to 1);
  probs: softmax over all E; selected: 1.0 where an expert is among the top k.
  """
  n = logits.shape[-1]
  vals, idx = jax.lax.top_k(logits, k)
  onehot = jax.nn.one_hot(idx, n, dtype=logits.dtype)  # [...,k,E]
  gates = jnp.einsum("...k,...ke->...e", jax.nn.softmax(vals, -1), onehot)
  return gates, jax.nn.softmax(logits, -1), onehot.sum(-2)


def load_balancing_loss(probs: jax.Array, selected: jax.Array) -> jax.Array:
  """E * sum_e mean(selected[:, e]) * mean(probs[:, e]) over routing units. probs, selected [N,E]."""
  return probs.shape[-1] * jnp.sum(selected.mean(0) * probs.mean(0))


# ----------------------------------------------------------------------------- modules

class TaskEmbedding(nnx.Module):
  """Task embedding table [n_tasks, dim] shared by the task routers of every site."""

  def __init__(self, n_tasks: int, dim: int, rngs: nnx.Rngs):
    self.n_tasks = n_tasks
    self.embedding = MoEParam(nnx.initializers.normal(1.0)(rngs.params(), (n_tasks, dim), jnp.float32),
                              **{LAYER_SHARED: True})  # every layer of a scanned stack reads it whole

  def __call__(self, ctx: Ctx, batch: int | None = None) -> jax.Array:
    """[B, dim] for ctx["task_ids"] (all task 0 when there is one task and no ids; `batch` is B)."""
    return jnp.take(self.embedding[...], ctx_task_ids(ctx, self.n_tasks, "moe_lora (router='task')", batch), axis=0)


class MoELoRA(nnx.Module):
  """A Dense plus a top-k routed mixture of LoRA experts (see module docstring)."""

  def __init__(self, base: Dense, *, n_experts: int, top_k: int, r: int, alpha: float, router: str,
               task_embed: TaskEmbedding | None, condition_dim: int | None, aux_loss_coef: float, rngs: nnx.Rngs,
               task_dim: int = 0):
    """`task_embed` may be set after construction (as `attach_moe_lora` does); `task_dim` then sizes the router."""
    self.base, self.router_kind, self.top_k, self.n_experts = base, router, top_k, n_experts
    self.scale, self.aux_loss_coef, self.condition_dim = alpha / r, aux_loss_coef, condition_dim
    d_in, d_out = base.d_in, base.d_out
    bound = 1.0 / math.sqrt(d_in)  # kaiming-uniform(a=sqrt 5), as torch / HF peft init LoRA A
    self.lora_a = MoEParam(jax.random.uniform(rngs.params(), (n_experts, d_in, r), jnp.float32, -bound, bound))
    self.lora_b = MoEParam(jnp.zeros((n_experts, r, d_out), jnp.float32))
    self.task_embed = nnx.data(task_embed)
    router_in = {"task": task_embed.embedding.shape[1] if task_embed is not None else task_dim,
                 "condition": condition_dim, "token": d_in}[router]
    self.router = MoEParam(nnx.initializers.lecun_normal()(rngs.params(), (router_in, n_experts), jnp.float32))

  def router_logits(self, x: jax.Array, ctx: Ctx) -> jax.Array:
    """[B,E] (task / condition routers) or [B,T,E] (token router)."""
    if self.router_kind == "task":
      z = self.task_embed(ctx, x.shape[0])
    elif self.router_kind == "condition":
      z = ctx_condition(ctx, self.condition_dim, "moe_lora (router='condition')")
    else:
      z = x.astype(jnp.float32)
    return z @ self.router[...]

  def __call__(self, x: jax.Array, ctx: Ctx = None) -> jax.Array:
    logits = self.router_logits(x, ctx)
    gates, probs, selected = top_k_gates(logits, self.top_k)
    if self.aux_loss_coef:
      e = self.n_experts
      self.sow(AuxLoss, "aux_loss",
               self.aux_loss_coef * load_balancing_loss(probs.reshape(-1, e), selected.reshape(-1, e)))
    g = gates if gates.ndim == 3 else gates[:, None]  # [B,T|1,E]
    h = jnp.einsum("btd,edr->bter", x, self.lora_a[...].astype(x.dtype)) * g[..., None].astype(x.dtype)
    delta = jnp.einsum("bter,ero->bto", h, self.lora_b[...].astype(x.dtype))
    return self.base(x, ctx) + self.scale * delta


class TaskGatedAdapter(nnx.Module):
  """base(x) followed by a bank of A bottleneck adapters mixed by per-task gates g[task] [A]."""

  def __init__(self, base: nnx.Module, *, n_tasks: int, n_adapters: int, d: int, m: int, act: str, gate: str,
               rngs: nnx.Rngs):
    self.base, self.n_tasks, self.act_name, self.gate = base, n_tasks, act, gate
    self.down = MoEParam(nnx.initializers.normal(0.02)(rngs.params(), (n_adapters, d, m), jnp.float32))
    self.down_bias = MoEParam(jnp.zeros((n_adapters, m), jnp.float32))
    self.up = MoEParam(jnp.zeros((n_adapters, m, d), jnp.float32))
    self.up_bias = MoEParam(jnp.zeros((n_adapters, d), jnp.float32))
    self.gate_logits = MoEParam(jnp.zeros((n_tasks, n_adapters), jnp.float32))

  def gates(self, ctx: Ctx, batch: int | None = None) -> jax.Array:
    """[B, A] gate of each adapter for each example's task."""
    ids = ctx_task_ids(ctx, self.n_tasks, "task_gated_adapter", batch)
    logits = jnp.take(self.gate_logits[...], ids, axis=0)
    return jax.nn.sigmoid(logits) if self.gate == "sigmoid" else jax.nn.softmax(logits, -1)

  def __call__(self, x: jax.Array, ctx: Ctx = None) -> jax.Array:
    y = self.base(x, ctx)
    dt = y.dtype
    h = activation(self.act_name)(jnp.einsum("btd,adm->btam", y, self.down[...].astype(dt))
                                  + self.down_bias[...].astype(dt))
    out = jnp.einsum("btam,amd->btad", h, self.up[...].astype(dt)) + self.up_bias[...].astype(dt)
    return y + jnp.einsum("btad,ba->btd", out, self.gates(ctx, y.shape[0]).astype(dt))


# ----------------------------------------------------------------------------- attach

@register("moe_lora", targets="qv", n_experts=4, top_k=2, r=8, alpha=8.0, router="task", n_tasks=None,
          task_dim=32, condition_dim=None, aux_loss_coef=0.01)
def attach_moe_lora(model: nnx.Module, cfg, rngs: nnx.Rngs) -> None:
  """Wraps every target Dense with a MoELoRA; a task router shares one TaskEmbedding at `model.cond_moe`."""
  if cfg.router not in ROUTERS:
    raise ValueError(f"moe_lora: router={cfg.router!r}; choose from {ROUTERS}")
  if cfg.r <= 0 or cfg.n_experts <= 0:
    raise ValueError(f"moe_lora: r and n_experts must be > 0, got r={cfg.r}, n_experts={cfg.n_experts}")
  if not 1 <= cfg.top_k <= cfg.n_experts:
    raise ValueError(f"moe_lora: top_k must be in 1..n_experts={cfg.n_experts}, got {cfg.top_k}")
  if cfg.router == "task" and (cfg.n_tasks is None or cfg.n_tasks <= 0 or cfg.task_dim <= 0):
    raise ValueError(f"moe_lora with router='task' needs n_tasks > 0 and task_dim > 0, got n_tasks={cfg.n_tasks!r}")
  if cfg.router == "condition" and (cfg.condition_dim is None or cfg.condition_dim <= 0):
    raise ValueError(f"moe_lora with router='condition' needs condition_dim > 0, got {cfg.condition_dim!r}")
  targets = find_targets(model, cfg.targets, (Dense,), what="moe_lora")
  task_embed = None
  if cfg.router == "task":
    if hasattr(model, ROOT_ATTR):
      raise ValueError("moe_lora with router='task' is already attached to this model; use one config")
    task_embed = TaskEmbedding(cfg.n_tasks, cfg.task_dim, rngs)
    setattr(model, ROOT_ATTR, task_embed)
  scanned = core.scanned_stacks(model)
  for path, dense in targets.items():
    site = lambda dense, rngs: MoELoRA(dense, n_experts=cfg.n_experts, top_k=cfg.top_k, r=cfg.r, alpha=cfg.alpha,
                                       router=cfg.router, task_embed=None, condition_dim=cfg.condition_dim,
                                       aux_loss_coef=cfg.aux_loss_coef, rngs=rngs, task_dim=cfg.task_dim)
    mod = core.per_layer(core.layer_count(model, path, scanned), site, dense, rngs=rngs)  # [L, ...] if scanned
    mod.task_embed = nnx.data(task_embed)  # shared by every site (and layer)
    replace_module(model, path, mod)


@register("task_gated_adapter", targets=ADAPTER_TARGETS, n_tasks=None, n_adapters=1, reduction_factor=16,
          act="relu", gate="sigmoid")
def attach_task_gated_adapter(model: nnx.Module, cfg, rngs: nnx.Rngs) -> None:
  """Wraps every target (default: attn.out and mlp of each layer) with a TaskGatedAdapter."""
  if cfg.n_tasks is None or cfg.n_tasks <= 0:
    raise ValueError(f"task_gated_adapter needs n_tasks > 0, got {cfg.n_tasks!r}")
  if cfg.n_adapters <= 0 or cfg.reduction_factor <= 0:
    raise ValueError(f"task_gated_adapter: n_adapters and reduction_factor must be > 0, got "
                     f"{cfg.n_adapters}, {cfg.reduction_factor}")
  if cfg.gate not in GATES:
    raise ValueError(f"task_gated_adapter: gate={cfg.gate!r}; choose from {GATES}")
  d = model.cfg.d_model
  scanned = core.scanned_stacks(model)
  site = lambda mod, rngs: TaskGatedAdapter(mod, n_tasks=cfg.n_tasks, n_adapters=cfg.n_adapters, d=d,
                                            m=max(1, d // cfg.reduction_factor), act=cfg.act, gate=cfg.gate, rngs=rngs)
  for path, mod in find_targets(model, cfg.targets, what="task_gated_adapter").items():
    replace_module(model, path, core.per_layer(core.layer_count(model, path, scanned), site, mod, rngs=rngs))
