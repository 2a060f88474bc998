"""Meta-learning over tasks through the trainer: MetaICL, Reptile or first-order MAML (icl/meta.py).

  python -m lightft_jax.main --config=configs/meta_learning.py:algorithm=reptile,steps=200 --workdir=runs/meta
Arguments: algorithm (metaicl | reptile | fomaml), steps, tasks (training tasks), k (demonstrations in
MetaICL sequences and in the k-shot evaluation), method (PEFT method trained; "full" trains everything),
lr (outer learning rate: Adam for metaicl, plain SGD for reptile / fomaml), inner_lr, inner_steps.
Tasks: the synthetic token-mapping family (each task a random map from input tokens to label tokens); the
evaluation uses held-out tasks: k-shot accuracy, and for reptile / fomaml accuracy before and after
`inner_steps` SGD steps on `support` examples of each held-out task.
"""

from lightft_jax.train import config_lib


def get_config(arg=None):
  a = config_lib.parse_arg(arg, algorithm="metaicl", steps=200, tasks=20, k=4, method="full", lr=0.0,
                           inner_lr=0.1, inner_steps=3)
  first_order = a.algorithm in ("reptile", "fomaml")
  c = config_lib.base_config()
  c.train.objective = a.algorithm
  c.total_steps = a.steps
  c.batch_size = 4 if first_order else 16  # tasks per step / k-shot sequences per step
  c.log_every, c.eval_every = 10, 0
  c.model.name = "tiny-gpt2"
  c.model.overrides = dict(vocab_size=32, d_model=32, n_layers=1, n_heads=2, d_ff=64, max_positions=64)
  c.model.max_length = 32
  c.peft = {"method": a.method}
  c.task.name = "token_mapping"
  c.task.eval_split, c.task.test_split = "held_out", ""
  c.meta = dict(family="token_mapping", train_tasks=a.tasks, held_out_seed=1000, held_out_tasks=4, k=a.k, sep=3,
                queries_per_task=16, support=8, query=8, inner_steps=a.inner_steps, inner_lr=a.inner_lr)
  if first_order:
    c.optimizer.name, c.optimizer.momentum, c.optimizer.lr = "sgd", 0.0, a.lr or 0.5
  else:
    c.optimizer.lr = a.lr or 3e-3
  c.optimizer.clip_norm = 0.0
  c.schedule.name = "constant"
  c.checkpoint.keep_best = False
  c.wandb.mode = "disabled"
  return config_lib.finalize(c)
