"""The reference side: transformers + peft (PyTorch) models and steps with the shapes of a Case.

Mixed precision on GPU: float32 weights and `torch.autocast(bfloat16)`, the same split as ours
(param_dtype float32, dtype bfloat16). On CPU everything is float32.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch
import transformers

from experiments.benchmarks.cases import Case
from lightft_jax.models.config import TransformerConfig

HF_TARGETS = {"gpt2": ["c_attn"], "bert": ["query", "value"], "llama": ["q_proj", "v_proj"]}


def hf_config(cfg: TransformerConfig, case: Case) -> transformers.PretrainedConfig:
  """The transformers config with the same shapes as our `cfg`."""
  if cfg.model_type == "gpt2":
    return transformers.GPT2Config(vocab_size=cfg.vocab_size, n_positions=cfg.max_positions, n_embd=cfg.d_model,
                                   n_layer=cfg.n_layers, n_head=cfg.n_heads, n_inner=cfg.d_ff,
                                   activation_function="gelu_new", resid_pdrop=0.0, embd_pdrop=0.0,
                                   attn_pdrop=0.0, layer_norm_epsilon=cfg.norm_eps, pad_token_id=cfg.pad_token_id)
  if cfg.model_type == "bert":
    return transformers.BertConfig(vocab_size=cfg.vocab_size, hidden_size=cfg.d_model,
                                   num_hidden_layers=cfg.n_layers, num_attention_heads=cfg.n_heads,
                                   intermediate_size=cfg.d_ff, max_position_embeddings=cfg.max_positions,
                                   type_vocab_size=cfg.type_vocab_size, hidden_dropout_prob=0.0,
                                   attention_probs_dropout_prob=0.0, layer_norm_eps=cfg.norm_eps,
                                   num_labels=case.num_labels)
  if cfg.model_type == "llama":
    return transformers.LlamaConfig(vocab_size=cfg.vocab_size, hidden_size=cfg.d_model,
                                    intermediate_size=cfg.d_ff, num_hidden_layers=cfg.n_layers,
                                    num_attention_heads=cfg.n_heads, num_key_value_heads=cfg.num_kv_heads,
                                    max_position_embeddings=cfg.max_positions, rope_theta=cfg.rope_theta,
                                    rms_norm_eps=cfg.norm_eps, tie_word_embeddings=cfg.tie_embeddings,
                                    attention_dropout=0.0)
  raise ValueError(f"no transformers counterpart for model_type {cfg.model_type!r}; use gpt2, bert or llama")


def hf_model(cfg: TransformerConfig, case: Case, device: str) -> torch.nn.Module:
  """A randomly initialised transformers model (float32) on `device`."""
  hcfg = hf_config(cfg, case)
  if case.task == "classification":
    cls = transformers.AutoModelForSequenceClassification
  else:
    cls = transformers.AutoModelForCausalLM
  with torch.device(device):
    model = cls.from_config(hcfg, torch_dtype=torch.float32)
  return model.eval() if case.kind != "train" else model.train()


def _peft_model(model, cfg: TransformerConfig, case: Case):
  import peft
  task_type = "SEQ_CLS" if case.task == "classification" else "CAUSAL_LM"
  m = case.method
  if m is None:
    return model
  if m["method"] in ("lora", "hyper_lora"):
    lcfg = peft.LoraConfig(r=m["r"], lora_alpha=m["alpha"], lora_dropout=0.0,
                           target_modules=HF_TARGETS[cfg.model_type], task_type=task_type,
                           fan_in_fan_out=cfg.model_type == "gpt2")
    pm = peft.get_peft_model(model, lcfg, adapter_name="t0")
    for t in range(1, case.num_tasks if m["method"] == "hyper_lora" else 1):
      pm.add_adapter(f"t{t}", lcfg)
    return pm
  if m["method"] == "prefix":
    return peft.get_peft_model(model, peft.PrefixTuningConfig(num_virtual_tokens=m["num_tokens"],
                                                              task_type=task_type))
  raise ValueError(f"no transformers + peft counterpart for PEFT method {m['method']!r}")


def _to(batch: dict[str, np.ndarray], device: str) -> dict[str, torch.Tensor]:
  return {k: torch.as_tensor(np.asarray(v, np.int64), device=device) for k, v in batch.items()}


def sync(device: str):
  if device == "cuda":
    torch.cuda.synchronize()


def train_step(model: torch.nn.Module, cfg: TransformerConfig, case: Case, batch: dict[str, np.ndarray],
               device: str, bf16: bool):
  """`model` from `hf_model`. Returns (step() -> None, trainable param count, loss of a first step).

  step() runs one optimizer step and waits for it.

  The hypernetwork case runs one LoRA adapter per task, looping over the task groups of the batch
  (the way a mixed-task batch runs with transformers + peft), then one AdamW step over all adapters.
  """
  model = _peft_model(model, cfg, case)
  params = [p for p in model.parameters() if p.requires_grad]
  if case.method is not None and case.method["method"] == "hyper_lora":
    params = [p for n, p in model.named_parameters() if "lora_" in n or "score" in n]
    for p in params:
      p.requires_grad_(True)
  opt = torch.optim.AdamW(params, lr=1e-4, weight_decay=0.01, fused=device == "cuda")
  tb = _to(batch, device)
  task_ids = tb.pop("task_ids", None)
  if case.task == "lm":
    tb["labels"] = tb["input_ids"]

  def loss_on(inputs):
    with torch.autocast(device_type=device, dtype=torch.bfloat16, enabled=bf16):
      return model(**inputs).loss

  def step():
    if task_ids is None:
      loss = loss_on(tb)
      loss.backward()
    else:
      loss = 0.0
      for t in range(case.num_tasks):
        rows = task_ids == t
        model.base_model.set_adapter(f"t{t}")
        part = loss_on({k: v[rows] for k, v in tb.items()}) * rows.float().mean()
        part.backward()
        loss = loss + part.detach()
    opt.step()
    opt.zero_grad(set_to_none=True)
    sync(device)
    return loss

  first_loss = float(step())
  return step, sum(p.numel() for p in params), first_loss


def generate_fn(model: torch.nn.Module, cfg: TransformerConfig, case: Case, prompts: np.ndarray, device: str,
                bf16: bool) -> Callable:
  """Greedy generation of exactly `case.new_tokens` tokens with the KV cache (model.generate)."""
  if bf16:
    model = model.to(torch.bfloat16)
  ids = torch.as_tensor(prompts, dtype=torch.long, device=device)
  mask = torch.ones_like(ids)

  @torch.inference_mode()
  def run():
    model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=case.new_tokens,
                   min_new_tokens=case.new_tokens, do_sample=False, use_cache=True, pad_token_id=cfg.pad_token_id)
    sync(device)

  return run


def score_fn(model: torch.nn.Module, cfg: TransformerConfig, case: Case, contexts: np.ndarray,
             choices: np.ndarray, device: str, bf16: bool) -> Callable:
  """Sum log p(choice | context) the usual way: one forward per (context + choice) sequence.

  contexts [N,Tc], choices [N,C,Lc] -> [N,C] log-likelihoods.
  """
  if bf16:
    model = model.to(torch.bfloat16)
  n, c, lc = choices.shape
  seqs = np.concatenate([np.repeat(contexts, c, 0), choices.reshape(n * c, lc)], 1)
  ids = torch.as_tensor(seqs, dtype=torch.long, device=device)
  tc = contexts.shape[1]

  @torch.inference_mode()
  def run():
    out = []
    for s in range(0, n * c, case.batch * c):
      chunk = ids[s:s + case.batch * c]
      logits = model(input_ids=chunk).logits[:, tc - 1:-1].float()
      logp = torch.log_softmax(logits, -1).gather(-1, chunk[:, tc:, None])[..., 0].sum(-1)
      out.append(logp)
    res = torch.cat(out).reshape(n, c)
    sync(device)
    return res

  return run


def peak_memory(device: str) -> int | None:
  return int(torch.cuda.max_memory_allocated()) if device == "cuda" else None


def reset_peak(device: str):
  if device == "cuda":
    torch.cuda.reset_peak_memory_stats()
