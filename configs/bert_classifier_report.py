"""A bert-base-cased sentiment classifier with a classification report on the dev split every epoch and on the
test split at the end: max length 128, AdamW 2e-5, 5 epochs, batch 16, labels negative (0) / positive (1).

  python -m lightft_jax.main --config=configs/bert_classifier_report.py:model=/path/to/bert-base-cased,data=reviews.csv \
      --workdir=runs/bert_report

`model=`: a local copy of bert-base-cased (README: Getting checkpoints). `data=`: your labelled text, either one
.csv / .jsonl / .tsv file, carved into train / validation / test (80 / 10 / 10, a permutation seeded by
`split_seed=`; disjoint and covering: the jsonl / csv task's `split=` option), or a directory holding
train / validation / test files of one format. Rows have a `text` and a `label` column (`text_field=`,
`label_field=`); labels are 0 / 1 or the words negative / positive. Without `data=` the task is Rotten Tomatoes
(labels rotten = 0 / fresh = 1, its own names for negative / positive).

Reports: DIR/reports/eval_step_N.txt after every epoch (per-class precision, recall, F1 and support on the
validation split; eval_every is the number of steps in one epoch, worked out here from the training split's
size: the rows of the training file, or Rotten Tomatoes' 10,198 training snippets, over the batch size,
dropping the last partial batch as the trainer does), and DIR/classification_report.txt on the test split at the
end. Keep-best keeps the checkpoint with the best validation accuracy.

Smoke size, offline on a CPU: `:smoke` trains the tiny-bert preset (random init, all-MiniLM-L6-v2's tokenizer)
for 2 steps of 8 with max length 32 and a dev report after step 1 (data= works here too):

  python -m lightft_jax.main --config=configs/bert_classifier_report.py:smoke --workdir=runs/report_smoke

Arguments: `model=`, `data=`, `text_field=`, `label_field=`, `split_seed=`, `epochs=`, `steps=`, `batch=`,
`lr=`, `max_length=`, `smoke`.
"""

from pathlib import Path

from lightft_jax.train import config_lib

LABELS = ("negative", "positive")  # label 0, label 1
SPLIT = {"train": 0.8, "validation": 0.1, "test": 0.1}  # one data file carved into these
ROTTEN_TOMATOES_TRAIN = 10_198  # training snippets of the default task (lightft_jax/data/README.md)
FORMATS = (".jsonl", ".csv", ".tsv")


def data_task(data: str, text_field: str, label_field: str, split_seed: int) -> tuple[str, dict, int]:
  """(task name, task options, training rows) for data= a file (carved) or a directory of split files."""
  from lightft_jax.data import sources
  path = Path(data).expanduser()
  common = {"text_fields": (text_field,), "label_field": label_field, "label_names": LABELS}
  if path.is_file():
    if path.suffix not in FORMATS:
      raise ValueError(f"data={data}: expected a {'/'.join(FORMATS)} file or a directory")
    n = len(sources.read_records(path))
    n_train = len(sources.carve_indices(n, SPLIT, split_seed)["train"])
    return (path.suffix.lstrip(".").replace("tsv", "csv"),
            {"path": str(path), "split": dict(SPLIT), "split_seed": split_seed, **common}, n_train)
  for ext in FORMATS:
    files = {s: path / f"{s}{ext}" for s in SPLIT}
    if all(f.is_file() for f in files.values()):
      return (ext.lstrip(".").replace("tsv", "csv"), {"path": {s: str(f) for s, f in files.items()}, **common},
              len(sources.read_records(files["train"])))
  raise FileNotFoundError(f"data={data}: neither a data file nor a directory with train / validation / test "
                          f"files of one format ({', '.join(FORMATS)})")


def get_config(arg=None):
  arg, smoke = config_lib.smoke_arg(arg)
  a = config_lib.parse_arg(arg, model="", data="", text_field="text", label_field="label", split_seed=0,
                           epochs=5.0, steps=0, batch=0, lr=2e-5, max_length=0)
  c = config_lib.base_config()
  c.seed = 0
  c.batch_size = a.batch or (8 if smoke else 16)
  c.model.max_length = a.max_length or (32 if smoke else 128)
  c.peft = {"method": "full"}
  if a.data:
    c.task.name, c.task.options, n_train = data_task(a.data, a.text_field, a.label_field, a.split_seed)
  else:
    c.task.name, n_train = "rotten_tomatoes", ROTTEN_TOMATOES_TRAIN
  c.task.eval_split, c.task.test_split = "validation", "test"
  c.optimizer.name = "adamw"
  c.optimizer.lr = a.lr
  c.optimizer.weight_decay = 0.01
  c.schedule.name = "linear"
  c.schedule.warmup_steps = 0
  c.eval.metric = "accuracy"
  c.eval.report_every_eval = True
  c.log_every = 50
  c.eval_every = c.checkpoint_every = max(1, n_train // c.batch_size)  # one epoch of steps: a report per epoch
  c.epochs, c.total_steps = (0.0, a.steps) if a.steps else (a.epochs, 1)  # epochs: total_steps set at the start
  if smoke:
    config_lib.smoke_run(c, a.model, a.steps)
    c.eval_every = 1  # a dev report after step 1, the test report at the end
  elif not a.model:
    raise ValueError("configs/bert_classifier_report.py needs model=DIR, a local copy of bert-base-cased "
                     "(config.json, model.safetensors, tokenizer.json; README: Getting checkpoints), or `:smoke`")
  else:
    c.model.name = a.model
  return config_lib.finalize(c)
