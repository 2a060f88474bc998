"""Conditional computation, hypernetworks, layer-wise and parameter-wise tuning and prompt-based fine-tuning in
one place: `method=` any of them.

  python -m lightft_jax.main --config=configs/conditional.py:method=moe_lora --workdir=runs/cond_moe
  python -m lightft_jax.main --config=configs/conditional.py:method=pet --workdir=runs/cond_pet
  python -m lightft_jax.main --config=configs/conditional.py:method=hyper_lora,smoke=True --workdir=/tmp/cond

Methods, all on the multi-task mixture of configs/multitask.py (rotten_tomatoes + convention_party +
debate_party on all-MiniLM-L6-v2, per-task and average metrics) except `pet`:
  conditional computation   moe_lora (router on task ids), task_gated_adapter
  hypernetworks             hyper_adapter, hyper_lora, hyper_prefix, hyper (HyperFormer++-style, task-conditioned)
  layer-wise / parameter-wise   layers (the top 2 blocks), mask (the 1% largest-magnitude linear weights)
  prompt-based              prompt (soft prompt tuning), pet (template + verbalizer fine-tuning of a causal LM:
                            SmolLM2-135M with LoRA on Rotten Tomatoes, "Review: {text}\\nAnswer:" scored by the LM's
                            logits of " negative" / " positive" at the last token, `task.kind="verbalized"`)
Arguments: method, steps, smoke (True: a tiny random-init model and 2 steps, offline), and for pet `model=`
(smollm2, a checkpoint directory or .gguf) and `pet_method=` (the PEFT method under the prompt: lora, full, ...).
"""

from pathlib import Path

from lightft_jax.models.assets import minilm_dir
from lightft_jax.train import config_lib

CONDITIONAL = ("moe_lora", "task_gated_adapter", "hyper_adapter", "hyper_lora", "hyper_prefix", "hyper")
SELECTIVE = ("layers", "mask", "prompt")


def _sibling(name: str):
  return config_lib.config_module(Path(__file__).with_name(f"{name}.py"))


def pet_config(a):
  c = config_lib.base_config()
  c.total_steps, c.batch_size, c.log_every = (2, 8, 1) if a.smoke else (a.steps, 16, 10)
  c.eval_every = 0
  if a.smoke:  # a tiny random-init decoder with MiniLM's tokenizer
    c.model.name, c.model.tokenizer = "tiny-gpt2", str(minilm_dir())
    c.model.overrides = {"vocab_size": 30522}
    c.task.eval_limit = 16
  else:
    c.model.name = a.model
  c.model.max_length = 96
  c.peft = {"method": a.pet_method, **({"r": 8, "alpha": 16, "targets": "qv"} if a.pet_method == "lora" else {})}
  c.task.name = "rotten_tomatoes"
  c.task.kind = "verbalized"
  c.task.template = "Review: {text}"
  c.task.padding = "bucket"
  c.optimizer.lr = 1e-4 if a.pet_method == "full" else 1e-3
  c.schedule.warmup_steps = min(10, c.total_steps // 10)
  c.eval.metric = "accuracy"
  c.wandb.mode = "offline"
  return config_lib.finalize(c)


def get_config(arg=None):
  a = config_lib.parse_arg(arg, method="hyper_lora", steps=600, smoke=False, model="smollm2", pet_method="lora")
  if a.method == "pet":
    return pet_config(a)
  if a.method not in CONDITIONAL + SELECTIVE:
    raise ValueError(f"method must be one of {CONDITIONAL + SELECTIVE + ('pet',)}, got {a.method!r}")
  smoke = ",model=tiny-bert,steps=2,batch=8,eval_every=0,eval_limit=16" if a.smoke else f",steps={a.steps}"
  multitask_method = a.method if a.method in CONDITIONAL else "adapter"
  c = _sibling("multitask").get_config(f"method={multitask_method}{smoke}")
  if a.method in SELECTIVE:  # the same mixture, the quickstart's choices for MiniLM (layers: top 2; mask: 1%)
    c.peft = _sibling("quickstart").peft_section(a.method)
  return config_lib.finalize(c)
