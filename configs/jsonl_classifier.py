"""Fine-tune a small encoder on your own JSONL text classification data.

DIR holds train.jsonl, validation.jsonl and test.jsonl with {"text": ..., "label": ...} lines:

  python -m lightft_jax.main --config=configs/jsonl_classifier.py:data=DIR,method=lora --workdir=runs/mine

`model` is a preset (random init; the MiniLM tokenizer is used) or an HF checkpoint directory.
"""

from lightft_jax.models.assets import minilm_dir
from lightft_jax.train import config_lib


def get_config(arg=None):
  a = config_lib.parse_arg(arg, data="", model="tiny-bert", method="full", steps=20, batch=8, lr=3e-3)
  if not a.data:
    raise ValueError("configs/jsonl_classifier.py needs data=DIR (a directory with train/validation/test.jsonl)")
  c = config_lib.base_config()
  c.total_steps, c.batch_size, c.log_every = a.steps, a.batch, 5
  c.model.name = a.model
  c.model.tokenizer = str(minilm_dir())
  c.model.max_length = 32
  if a.model == "tiny-bert":
    c.model.overrides = {"vocab_size": 30522, "d_model": 32, "n_heads": 2, "d_ff": 64, "max_positions": 64}
  c.peft = {"method": a.method} if a.method != "lora" else {"method": "lora", "r": 4, "targets": "qv"}
  c.task.name = "jsonl"
  c.task.options = {"path": {s: f"{a.data}/{s}.jsonl" for s in ("train", "validation", "test")}}
  c.optimizer.lr = a.lr
  c.schedule.warmup_steps = 2
  c.checkpoint.async_save = False
  c.wandb.mode = "disabled"
  c.logging.progress = False
  return config_lib.finalize(c)
