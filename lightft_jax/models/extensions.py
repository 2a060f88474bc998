"""The model's extension points: the declared interface through which PEFT methods (`lightft_jax.peft`) change
what the model computes without the model naming any method.

Besides wrapping modules by path (every submodule call takes `ctx`; see layers.py), a method may fill one of
these slots. Each is an `nnx.data` attribute that holds None until a method sets it; the model only calls
what is declared here.

1. `Attention.extra_kv`: an `ExtraKV`. Extra key/value slots that every query of that attention layer may
   attend, placed before the cached / current keys (prefix tuning, P-tuning v2, generated prefixes). The
   positions of the real tokens do not move. If it states `num_slots` = P, the slots sit at positions
   -P..-1 just before the sequence, so a relative position bias (T5) covers them as it does in HF peft's
   prefix tuning; without `num_slots` they get zero bias.

2. `Transformer.input_transform`: an `InputTransform`. Maps the embedded input `Inputs` (embeddings,
   attention mask, token types, positions) of the encoder, or of a decoder-only model, before the first
   stack (prompt tuning, P-tuning v1, any input-side method). It declares `added_length` = A, the number
   of positions it puts before the input; the model drops those A positions from its per-position outputs
   (`hidden_states`, and the logits of token-level tasks) of encoder or decoder-only models, so outputs stay
   aligned with the caller's tokens, and `generate` counts them against `max_positions`. An input transform
   cannot be combined with a KV cache in `Transformer.__call__`; `generate` applies it to the prompt once.

3. `AuxLoss`: the variable type of auxiliary losses. A module that adds a term to the training objective
   (e.g. mixture-of-experts load balancing) sows it as `self.sow(AuxLoss, name, value)`; the train step pops
   every `AuxLoss` after the forward pass and adds their sum to the training loss (evaluation losses are the
   task loss alone). It is an `nnx.Intermediate`, so filters on `nnx.Intermediate` still see it.

4. `LAYER_SHARED`: a variable metadata key. A scan_layers=True stack runs one Block whose variables are
   stacked [L, ...] and hands each layer its slice; a variable created with `LAYER_SHARED=True` in its metadata
   (e.g. `nnx.Param(x, layer_shared=True)`) that a layer reaches (a hypernetwork or prefix reparameterisation
   shared by every layer) is given whole to every layer instead, and its gradient sums over them.

5. `hoist(model)`: values that every step of a decode loop would recompute from weights alone (a LoRA Dense's
   named adapters stacked [N, ...] for per-example gathering) are computed once per jitted call instead: a
   module defines `hoist()` (compute them, keep them in `Hoisted` variables, read them in `__call__` when set).
   `generate` calls `hoist` on the model it merged inside its trace, before the prefill and the loop, so the
   copies never outlive the call and never meet a gradient. Do not hoist a model you go on training.

Methods whose change is not one of these (LoRA, adapters, IA3, a LLaMA-Adapter gate around attention)
replace modules by path and call the base module's public methods (e.g. `Attention.project`).

Shapes: B batch, T input length, A added positions, P extra slots, D d_model, K kv heads, Dh head dim.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Protocol, runtime_checkable

import jax
from flax import nnx

Ctx = dict[str, Any] | None

LAYER_SHARED = "layer_shared"  # metadata key of variables every layer of a scanned stack shares (item 4 above)


def axis_names(var: nnx.Variable) -> tuple:
  """A variable's logical axis names (its `out_sharding` / `sharding_names` metadata), or () when it has none."""
  meta = var.get_metadata()
  return tuple(meta.get("out_sharding") or meta.get("sharding_names") or ())


class Hoisted(nnx.Variable):
  """A value computed by a module's `hoist()` from its weights, valid for the current jitted call (item 5)."""


def hoist(model: nnx.Module) -> nnx.Module:
  """Calls `hoist()` on every submodule that defines it (item 5); returns model."""
  for _, m in nnx.iter_modules(model):
    if callable(getattr(type(m), "hoist", None)):
      m.hoist()
  return model


def is_layer_shared(path, x) -> bool:
  """nnx filter: variables marked `LAYER_SHARED` (given whole to every layer of a scanned stack)."""
  return isinstance(x, nnx.Variable) and bool(x.get_metadata().get(LAYER_SHARED))


class AuxLoss(nnx.Intermediate):
  """An auxiliary loss term a module sows during the forward pass; the train step adds the sum of all of them
  to the training loss."""


@runtime_checkable
class ExtraKV(Protocol):
  """`Attention.extra_kv`: extra key/value slots every query attends.

  Optional attribute `num_slots: int` (P): the slots sit at positions -P..-1 for a relative position bias.
  """

  def __call__(self, batch_size: int, ctx: Ctx = None) -> tuple[jax.Array, jax.Array]:
    """-> (k [B,P,K,Dh], v [B,P,K,Dh]) for a batch of `batch_size`."""
    ...


class Inputs(NamedTuple):
  """The embedded input an `InputTransform` sees and returns (positions and token types may be None: the
  model then derives them as without a transform)."""

  inputs_embeds: jax.Array            # [B,T,D]
  attention_mask: jax.Array           # [B,T], 1 on real tokens
  token_type_ids: jax.Array | None    # [B,T]
  positions: jax.Array | None         # [B,T]


@runtime_checkable
class InputTransform(Protocol):
  """`Transformer.input_transform`: `Inputs` [B,T,...] -> `Inputs` [B,A+T,...], before the first stack."""

  added_length: int  # A: positions placed before the input (dropped again from per-position outputs)

  def __call__(self, inputs: Inputs, ctx: Ctx = None) -> Inputs:
    ...


def extra_kv_length(ext: ExtraKV | None) -> int:
  """P of the slots an `ExtraKV` places before the sequence (0 for None or one that states no `num_slots`)."""
  return 0 if ext is None else int(getattr(ext, "num_slots", 0))


__all__ = ["AuxLoss", "Ctx", "ExtraKV", "InputTransform", "Inputs", "LAYER_SHARED", "axis_names",
           "extra_kv_length", "is_layer_shared"]
