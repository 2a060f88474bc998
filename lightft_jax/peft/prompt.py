"""Prompt tuning (Lester et al. 2021): P learned input embeddings placed before every input.

`SoftPrompt` is the model's input transform (`Transformer.input_transform`, models/extensions.py): it prepends
the prompt to the token embeddings of the (encoder, or decoder-only) input, extends `attention_mask` /
`token_type_ids` with ones / zeros, and lets positions run over prompt + input, as HF peft does (real tokens
start at position P). Its `added_length` is P, so the model aligns outputs with the given input again:
`hidden_states` and token-level logits drop the P prompt positions; sequence heads see them (BERT-style
pooling reads the first prompt position, as in HF peft).

Init: "random" (normal with the vocabulary embeddings' std), "vocab" (embeddings of P token ids drawn from
the first 5000 of the vocabulary), "text" (embeddings of `init_text` tokenized by the tokenizer at
`tokenizer`, repeated / cut to P tokens, as HF peft).

HF peft interop (peft_type PROMPT_TUNING, registered with `hf_io.register_hf` at the end of this module): the
prompt is HF's `prompt_embeddings` [P, D]; encoder-decoders keep P rows per transformer submodule (see `_save_hf`).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from lightft_jax.models.extensions import Ctx, Inputs
from lightft_jax.peft import core, hf_io
from lightft_jax.peft.core import PeftParam, check_virtual_tokens, register


class PromptParam(PeftParam):
  """Soft prompt embeddings."""


class SoftPrompt(nnx.Module):
  """`prompt` [P, D]; an `extensions.InputTransform` (see the module docstring)."""

  def __init__(self, init: jax.Array):
    self.prompt = PromptParam(init, sharding_names=(None, "embed"))

  @property
  def num_tokens(self) -> int:
    return self.prompt.shape[0]

  @property
  def added_length(self) -> int:
    return self.num_tokens

  def __call__(self, inputs: Inputs, ctx: Ctx = None) -> Inputs:
    """Inputs [B,T,...] -> Inputs [B,P+T,...]: embeddings, mask, token types and positions all extended."""
    x, attention_mask, token_type_ids, positions = inputs
    b, p = x.shape[0], self.num_tokens
    x = jnp.concatenate([jnp.broadcast_to(self.prompt[...].astype(x.dtype), (b, p, x.shape[-1])), x], 1)
    attention_mask = jnp.concatenate([jnp.ones((b, p), attention_mask.dtype), attention_mask], 1)
    if token_type_ids is not None:
      token_type_ids = jnp.concatenate([jnp.zeros((b, p), token_type_ids.dtype), token_type_ids], 1)
    if positions is not None:
      positions = jnp.concatenate([jnp.broadcast_to(jnp.arange(p, dtype=positions.dtype), (b, p)), positions + p], 1)
    return Inputs(x, attention_mask, token_type_ids, positions)


INITS = ("random", "vocab", "text")


def prompt_init(model: nnx.Module, cfg, rngs: nnx.Rngs) -> jax.Array:
  """[P, D] initial prompt as `cfg.init` says."""
  table = model.embed.tokens.embedding[...]
  p = cfg.num_tokens
  if cfg.init == "random":
    return jnp.std(table) * jax.random.normal(rngs.params(), (p, table.shape[1]), table.dtype)
  if cfg.init == "vocab":
    ids = jax.random.randint(rngs.params(), (p,), 0, min(5000, table.shape[0]))
    return table[ids]
  if cfg.init == "text":
    if not cfg.init_text or not cfg.tokenizer:
      raise ValueError("prompt init='text' needs init_text='...' and tokenizer=<tokenizer directory>")
    from lightft_jax.models.tokenizer import Tokenizer
    tok = cfg.tokenizer if isinstance(cfg.tokenizer, Tokenizer) else Tokenizer.from_file(cfg.tokenizer)
    ids = tok.encode(cfg.init_text)
    if not ids:
      raise ValueError(f"init_text {cfg.init_text!r} tokenizes to no tokens")
    ids = (ids * math.ceil(p / len(ids)))[:p]
    if max(ids) >= table.shape[0]:
      raise ValueError(f"the tokenizer gives id {max(ids)} but the model has {table.shape[0]} embeddings")
    return table[jnp.asarray(ids)]
  raise ValueError(f"unknown prompt init {cfg.init!r}; choose from {INITS}")


@register("prompt", num_tokens=20, init="random", init_text="", tokenizer="")
def attach(model: nnx.Module, cfg, rngs: nnx.Rngs) -> None:
  """Soft prompt before the model input (the encoder input for encoder-decoders)."""
  check_virtual_tokens(model, cfg.num_tokens, "prompt")
  current = getattr(model, "input_transform", None)
  if current is not None:
    what = "a soft prompt" if isinstance(current, SoftPrompt) else f"an input transform ({type(current).__name__})"
    raise ValueError(f"the model already has {what}; apply prompt tuning once")
  model.input_transform = SoftPrompt(prompt_init(model, cfg, rngs))


def soft_prompt(model: nnx.Module) -> SoftPrompt | None:
  """The model's soft prompt, or None."""
  t = getattr(model, "input_transform", None)
  return t if isinstance(t, SoftPrompt) else None


# ---------------------------------------------------------------------------------------------- HF peft

def _save_hf(model, names, adapter, tensors) -> dict:
  prompt = hf_io.to_np(soft_prompt(model).prompt[...])
  # Encoder-decoders: HF keeps 2P rows and prepends the first P to the encoder input; its prompt-tuning forward
  # never reads the other P (the decoder half), which we fill with a copy.
  tensors["prompt_embeddings"] = np.concatenate([prompt] * hf_io.transformer_submodules(model), 0)
  cfg = hf_io.prompt_learning_config(model, prompt.shape[0], model.cfg.d_model, model.cfg.n_heads)
  cfg.update(prompt_tuning_init="RANDOM", prompt_tuning_init_text=None, tokenizer_name_or_path=None)
  return cfg


def _load_hf(model, cfg, tensors, adapter):
  hf_io.check_prompt_learning_config(model, cfg, model.cfg.d_model)
  rest = dict(tensors)
  emb = rest.pop("prompt_embeddings")
  p = int(cfg.get("num_virtual_tokens") or emb.shape[0])
  if emb.shape[0] != p * (cfg.get("num_transformer_submodules") or 1):
    raise ValueError(f"prompt_embeddings has {emb.shape[0]} rows; the config needs num_virtual_tokens * "
                     f"num_transformer_submodules = {p} * {cfg.get('num_transformer_submodules') or 1}")
  emb = emb[:p]  # HF's prompt-tuning forward prepends only the first P rows (to the encoder input)
  core.apply(model, {"method": "prompt", "num_tokens": p, "train_head": False})
  hf_io.assign(soft_prompt(model).prompt, emb, "prompt_embeddings")
  return rest


hf_io.register_hf(hf_io.HFMethod("PROMPT_TUNING", lambda model: soft_prompt(model) is not None, _save_hf, _load_hf,
                                 prompt_learning=True))
