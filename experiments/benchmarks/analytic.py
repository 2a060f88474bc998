"""Analytic FLOPs and memory floor of a case, for MFU and for the "ours / floor" memory ratio.

FLOPs (matmuls only; one multiply-add = 2 FLOPs). Forward per token: 2 * (matmul parameters, the LM
head included) + 4 * layers * seq * (heads * head_dim) for QK^T and AV (full square, not halved for
the causal mask, as in the PaLM MFU convention). A full fine-tuning step costs 3x the forward
(forward, activation gradients, weight gradients); a PEFT step costs 2x (frozen weights get no weight
gradient), plus the PEFT matmuls themselves (negligible at r=8). We also give the 6N convention.

Memory floor of a training step: every parameter as stored + gradients and AdamW's two moments of
the trainable parameters (float32) + the activations a backward pass must keep, counted per layer and
token as the inputs of each matmul / norm / nonlinearity in the compute dtype:
  attention block: norm input D, normed D, q D, k and v 2*Dkv, attention output D (+ softmax stats)
  MLP block: norm input D, normed D, up F (+ gate F and gate*up F when gated, else act(up) F)
plus float32 logits and their log-softmax for the LM loss (B*T*V*4*2).
"""

from __future__ import annotations

from experiments.benchmarks.cases import Case
from lightft_jax.models.config import TransformerConfig


def matmul_params(cfg: TransformerConfig, case: Case) -> int:
  d, f, l = cfg.d_model, cfg.d_ff, cfg.n_layers
  attn = d * cfg.n_heads * cfg.dim_head * 2 + d * cfg.num_kv_heads * cfg.dim_head * 2
  mlp = d * f * (3 if cfg.gated_mlp else 2)
  head = d * cfg.vocab_size if case.task == "lm" else d * case.num_labels + (d * d if cfg.pooler else 0)
  return l * (attn + mlp) + head


def forward_flops(cfg: TransformerConfig, case: Case, tokens: int, seq: int) -> float:
  attn = 4 * cfg.n_layers * seq * cfg.n_heads * cfg.dim_head
  return tokens * (2 * matmul_params(cfg, case) + attn)


def train_flops(cfg: TransformerConfig, case: Case) -> dict[str, float]:
  """{"required": FLOPs the step must do, "six_n": 6 * matmul params * tokens + 3 * attention}."""
  tokens = case.batch * case.seq
  fwd = forward_flops(cfg, case, tokens, case.seq)
  return {"required": fwd * (3 if case.method is None else 2), "six_n": fwd * 3}


def activation_bytes(cfg: TransformerConfig, case: Case) -> int:
  d, f = cfg.d_model, cfg.d_ff
  dkv = cfg.num_kv_heads * cfg.dim_head
  per_token = (3 * d + 2 * dkv + d) + (2 * d + (3 if cfg.gated_mlp else 2) * f)
  act = cfg.compute_dtype.itemsize * per_token * cfg.n_layers * case.batch * case.seq
  if case.task == "lm":
    act += 2 * 4 * case.batch * case.seq * cfg.vocab_size
  return act


def memory_floor(cfg: TransformerConfig, case: Case, total_params: int, trainable_params: int) -> dict[str, int]:
  weights = total_params * cfg.params_dtype.itemsize
  grads = trainable_params * 4
  adam = trainable_params * 8
  act = activation_bytes(cfg, case)
  return {"weights": weights, "grads": grads, "optimizer": adam, "activations": act,
          "total": weights + grads + adam + act}
