"""The quickstart: LoRA (r=8 on every linear layer) on the real all-MiniLM-L6-v2 encoder, Rotten Tomatoes polarity.

  python -m lightft_jax.main --config=configs/quickstart.py --workdir=runs/quickstart

Trains a mean-pooling classification head (all-MiniLM-L6-v2 is a mean-pooling sentence encoder) with LoRA for
200 steps, then a head-only baseline (a linear probe on the frozen mean-pooled embeddings: 300 steps at lr 1e-2,
cheap steps with no backward pass through the encoder), evaluates both on the held-out test split and writes
runs/quickstart/comparison.md (method, trainable params, test accuracy, wall time), a classification report
and training.png. Settings were chosen on the validation split (experiments/quickstart/README.md). About 7 minutes
on 2 idle CPU cores (2026-11-28); fully offline once the dataset is prepared.
Arguments: `steps=`, `batch=`, `lr=`, `head_lr=`, `r=`, `targets=` (LoRA targets: all_linear, qv, attn, ...),
`pool=` (mean, or bert for the pooler), `max_length=`, `warmup=`, `base_steps=` / `base_lr=` (head-only
baseline), `method=` (lora by default; any PEFT method name with its default options, e.g. ia3, adapter,
bitfit, prefix, full), e.g. --config=configs/quickstart.py:method=ia3,steps=50.
"""

from lightft_jax.models.assets import minilm_dir
from lightft_jax.train import config_lib


def get_config(arg=None):
  a = config_lib.parse_arg(arg, steps=200, batch=32, lr=2e-3, head_lr=1e-2, r=8, max_length=64, method="lora",
                           targets="all_linear", pool="mean", warmup=10, base_steps=300, base_lr=1e-2)
  c = config_lib.base_config()
  c.seed = 0
  c.total_steps, c.batch_size = a.steps, a.batch
  c.log_every, c.eval_every, c.checkpoint_every = 10, 50, 50

  c.model.name = str(minilm_dir())
  c.model.max_length = a.max_length
  c.model.head_style = a.pool
  c.peft = ({"method": "lora", "r": a.r, "alpha": 2 * a.r, "targets": a.targets} if a.method == "lora"
            else {"method": a.method})

  c.task.name = "rotten_tomatoes"
  c.task.eval_limit = 256  # periodic evals on part of validation; the final test eval uses the whole split
  c.task.padding = "bucket"

  c.optimizer.name = "adamw"
  c.optimizer.lr = a.lr
  c.optimizer.lr_groups = ((r"^head\.", a.head_lr / a.lr),)  # the fresh head learns faster
  c.optimizer.weight_decay = 0.01
  c.schedule.name = "cosine"
  c.schedule.warmup_steps = a.warmup

  c.eval.metric = "accuracy"
  c.wandb.mode = "offline"
  c.baselines = (("head-only", {"peft": {"method": "head"}, "optimizer.lr": a.base_lr,
                                "optimizer.lr_groups": (), "total_steps": a.base_steps}),)
  return config_lib.finalize(c)
