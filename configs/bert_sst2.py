"""Full fine-tuning of bert-base-uncased on SST-2 (GLUE), the classic recipe: AdamW 5e-5, 3 epochs, batch 32,
max length 128, linear decay without warmup (the `transformers` Trainer defaults), accuracy.

  python -m lightft_jax.main --config=configs/bert_sst2.py:model=/path/to/bert-base-uncased --workdir=runs/bert_sst2

`model=` is a local copy of bert-base-uncased (config.json + model.safetensors + tokenizer.json; nothing is
downloaded: README, "Getting checkpoints"). The data is TFDS `glue/sst2` (67,349 train / 872 validation
sentences), prepared once with `tfds build glue/sst2 --file_format=array_record` (or `task.data_dir`). SST-2's
test split has no labels, so this config evaluates on the validation split: every epoch (eval_every = 67,349 //
32 = 2,104 steps, keep-best on validation accuracy) and at the end; there is no test evaluation
(task.test_split=""). The classifier is BERT's own (pooler + linear, as BertForSequenceClassification); dropout
comes from the checkpoint's config.json (0.1).

Smoke size, offline on a CPU (a few seconds of training): `:smoke` trains the tiny-bert preset (random init,
all-MiniLM-L6-v2's tokenizer and vocabulary) for 2 steps of 8 on Rotten Tomatoes (`task.name=rotten_tomatoes`)
with max length 32 and writes the same run directory:

  python -m lightft_jax.main --config=configs/bert_sst2.py:smoke --workdir=runs/bert_sst2_smoke

Arguments: `model=` (checkpoint directory; with smoke: a preset or a directory), `epochs=`, `steps=` (> 0:
a fixed number of steps instead of epochs), `batch=` (default 32; 8 with smoke), `lr=`, `max_length=` (default
128; 32 with smoke), `smoke`.
"""

from lightft_jax.train import config_lib

SST2_TRAIN = 67_349  # glue/sst2 train sentences (TFDS 2.0.0)


def get_config(arg=None):
  arg, smoke = config_lib.smoke_arg(arg)
  a = config_lib.parse_arg(arg, model="", epochs=3.0, steps=0, batch=0, lr=5e-5, max_length=0)
  c = config_lib.base_config()
  c.seed = 0
  c.batch_size = a.batch or (8 if smoke else 32)
  c.model.max_length = a.max_length or (32 if smoke else 128)
  c.peft = {"method": "full"}
  c.task.name = "sst2"
  c.task.eval_split = "validation"
  c.task.test_split = ""  # SST-2's test labels are hidden (-1): validation is the reported split
  c.optimizer.name = "adamw"
  c.optimizer.lr = a.lr
  c.optimizer.weight_decay = 0.0
  c.optimizer.clip_norm = 1.0
  c.schedule.name = "linear"
  c.schedule.warmup_steps = 0
  c.eval.metric = "accuracy"
  c.log_every = 50
  c.eval_every = c.checkpoint_every = SST2_TRAIN // c.batch_size  # once per epoch (the loop drops the last partial batch)
  c.epochs, c.total_steps = (0.0, a.steps) if a.steps else (a.epochs, 1)  # epochs: total_steps set at the start
  if smoke:
    config_lib.smoke_run(c, a.model, a.steps)
    c.task.name = "rotten_tomatoes"
  elif not a.model:
    raise ValueError("configs/bert_sst2.py needs model=DIR, a local copy of bert-base-uncased (config.json, "
                     "model.safetensors, tokenizer.json; README: Getting checkpoints), or `:smoke` for a CPU run")
  else:
    c.model.name = a.model
  return config_lib.finalize(c)
