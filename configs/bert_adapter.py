"""Bottleneck adapters (Houlsby et al. 2019) on a frozen BERT classifier, beside full fine-tuning.

  python -m lightft_jax.main --config=configs/bert_adapter.py:model=/path/to/bert-base-uncased --workdir=runs/bert_adapter
  python -m lightft_jax.main --config=configs/bert_adapter.py:model=/path/to/bert-base-uncased,placement=parallel \
      --workdir=runs/bert_adapter_parallel

Adapters (down-projection, ReLU, up-projection, zero-initialised so the model starts as the pretrained one)
after the attention and feed-forward sublayers of every block (`placement=sequential`, Houlsby) or beside them
(`placement=parallel`, He et al. 2022), reduction factor 16; the encoder stays frozen, the adapters (and the
fresh classifier head) train with AdamW at lr 1e-4. A full fine-tuning baseline (AdamW 2e-5, every weight) runs
under the same data and budget in DIR/baselines/full, and DIR/comparison.md / comparison.json put trainable
parameters and accuracy side by side.

Paper size: bert-base-uncased (`model=`, a local checkpoint directory; README: Getting checkpoints) on SST-2
(TFDS glue/sst2), 3 epochs of batch 32, max length 128, evaluated every epoch and at the end. SST-2's test split
is unlabelled, so the accuracy reported (and compared in comparison.md, whose column says "test") is the
validation split's. `task=` picks another GLUE / SuperGLUE / user task, e.g. task=rotten_tomatoes.

Smoke size, offline on a CPU: `:smoke` runs both (adapters, then the baseline) for 2 steps of 8 with the
tiny-bert preset (random init, all-MiniLM-L6-v2's tokenizer) on Rotten Tomatoes:

  python -m lightft_jax.main --config=configs/bert_adapter.py:smoke,placement=parallel --workdir=runs/adapter_smoke

Arguments: `placement=` (sequential | parallel), `adapter=` (houlsby: after attention and FFN | pfeiffer: after
the FFN only), `reduction_factor=`, `lr=` (adapters), `full_lr=` (baseline), `baselines=False` (adapters only),
`model=`, `task=`, `epochs=`, `steps=`, `batch=`, `max_length=`, `smoke`.
"""

from lightft_jax import peft
from lightft_jax.train import config_lib

TRAIN_SIZE = {"sst2": 67_349, "rotten_tomatoes": 10_198}  # training examples, for once-per-epoch evaluation


def get_config(arg=None):
  arg, smoke = config_lib.smoke_arg(arg)
  a = config_lib.parse_arg(arg, model="", task="", placement="sequential", adapter="houlsby", reduction_factor=16,
                           lr=1e-4, full_lr=2e-5, epochs=3.0, steps=0, batch=0, max_length=0, baselines=True)
  if a.placement not in ("sequential", "parallel"):
    raise ValueError(f"placement must be sequential or parallel, got {a.placement!r}")
  c = config_lib.base_config()
  c.seed = 0
  c.batch_size = a.batch or (8 if smoke else 32)
  c.model.max_length = a.max_length or (32 if smoke else 128)
  c.peft = {"method": "adapter", **peft.options("adapter"), "config": a.adapter, "placement": a.placement,
            "reduction_factor": a.reduction_factor}
  c.task.name = a.task or ("rotten_tomatoes" if smoke else "sst2")
  c.task.eval_split = "validation"
  c.task.test_split = "" if c.task.name == "sst2" else "test"  # SST-2's test labels are hidden
  c.optimizer.name = "adamw"
  c.optimizer.lr = a.lr
  c.optimizer.weight_decay = 0.0
  c.schedule.name = "linear"
  c.schedule.warmup_steps = 0
  c.eval.metric = "accuracy"
  c.log_every = 50
  per_epoch = TRAIN_SIZE.get(c.task.name, 0) // c.batch_size
  c.eval_every = c.checkpoint_every = per_epoch  # once per epoch where the split size is known, else at the end
  c.epochs, c.total_steps = (0.0, a.steps) if a.steps else (a.epochs, 1)  # epochs: total_steps set at the start
  full = {"peft": {"method": "full"}, "optimizer.lr": a.full_lr}
  c.baselines = (("full", full),) if a.baselines else ()
  if smoke:
    config_lib.smoke_run(c, a.model, a.steps)
  elif not a.model:
    raise ValueError("configs/bert_adapter.py needs model=DIR, a local copy of bert-base-uncased (config.json, "
                     "model.safetensors, tokenizer.json; README: Getting checkpoints), or `:smoke` for a CPU run")
  else:
    c.model.name = a.model
  peft.check_config(c.peft)
  return config_lib.finalize(c)
