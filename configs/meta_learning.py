"""Meta-learning over tasks through the trainer: MetaICL, Reptile or first-order MAML (icl/meta.py).

  python -m lightft_jax.main --config=configs/meta_learning.py:algorithm=reptile,steps=200 --workdir=runs/meta
  python -m lightft_jax.main --config=configs/meta_learning.py:family=text,algorithm=metaicl,steps=30 --workdir=...
Arguments: algorithm (metaicl | reptile | fomaml), steps (0: evaluate the model without meta-training), k
(demonstrations in MetaICL sequences and in the k-shot evaluation), method (PEFT method trained; "full" trains
everything), lr (outer learning rate: Adam for metaicl, plain SGD for reptile / fomaml), inner_lr, inner_steps,
queries (held-out queries per task in each evaluation).

family=token_mapping (default): the synthetic family (each task a random map from input tokens to label
tokens), tiny-gpt2, `tasks` training tasks, 4 held-out tasks.
family=text: real labelled text tasks (icl/meta.py TEXT_TASKS: template + one-token verbalizers) on a real LM
(`model`, default the bundled SmolLM2-135M) with LoRA (`r`, on q and v): meta-trained on the train splits of
`train` (task names joined by +), evaluated on `held_out` (validation split during the run, test split at
the end; demonstrations and adaptation examples from the held-out task's train split), texts cut to
`max_words` words; `length` (default from max_words and k) the padded training sequence length.
Evaluation: k-shot accuracy on the held-out tasks, and for reptile / fomaml accuracy before and after
`inner_steps` SGD steps on `support` examples of each held-out task.
"""

from lightft_jax.icl.meta import TEXT_TASKS
from lightft_jax.models import PRESETS
from lightft_jax.models.assets import smollm2_gguf
from lightft_jax.train import config_lib

SMOLLM2_VOCAB = 49152
ALGORITHMS = ("metaicl", "reptile", "fomaml")


def get_config(arg=None):
  a = config_lib.parse_arg(arg, algorithm="metaicl", steps=200, tasks=20, k=4, method="", lr=0.0,
                           inner_lr=0.0, inner_steps=3, family="token_mapping", model="smollm2",
                           train="convention_party+debate_party", held_out="rotten_tomatoes", max_words=30, r=8,
                           queries=0, support=8, batch=0, length=0, query=8)
  first_order = a.algorithm in ("reptile", "fomaml")
  text = a.family == "text"
  if a.family not in ("text", "token_mapping"):
    raise ValueError(f"unknown family {a.family!r}; choose 'text' or 'token_mapping'")
  if a.algorithm not in ALGORITHMS:
    raise ValueError(f"unknown algorithm {a.algorithm!r}; choose from {ALGORITHMS}")
  if text:
    for key, names in (("train", a.train), ("held_out", a.held_out)):
      unknown = [n for n in names.replace("+", ",").split(",") if n not in TEXT_TASKS]
      if unknown or not names:
        raise ValueError(f"{key}={names!r}: unknown text task(s) {unknown}; known: {sorted(TEXT_TASKS)}")
  c = config_lib.base_config()
  c.train.objective = a.algorithm
  c.total_steps = a.steps
  c.batch_size = a.batch or (4 if first_order else 16)  # tasks per step / k-shot sequences per step
  c.log_every, c.eval_every = 10, 0
  method = a.method or ("lora" if text else "full")
  if text:
    c.model.name = a.model
    if a.model in PRESETS:  # a random-init preset reads the SmolLM2 tokenizer (tests, smoke runs)
      c.model.tokenizer = str(smollm2_gguf())
      c.model.overrides = {"vocab_size": SMOLLM2_VOCAB, "max_positions": 512}
    # tokens of one example (template + max_words words + answer), times k + 1 for MetaICL's k-shot sequences
    c.model.max_length = a.length or (3 * a.max_words + 12) * (1 if first_order else a.k + 1)
    c.peft = {"method": method, **({"r": a.r, "alpha": 2 * a.r, "targets": "qv"} if method == "lora" else {})}
    c.task.name = a.held_out
    c.task.eval_split, c.task.test_split = "validation", "test"
  else:
    c.model.name = "tiny-gpt2"
    c.model.overrides = dict(vocab_size=32, d_model=32, n_layers=1, n_heads=2, d_ff=64, max_positions=64)
    c.model.max_length = 32
    c.peft = {"method": method}
    c.task.name = "token_mapping"
    c.task.eval_split, c.task.test_split = "held_out", ""
  c.meta = dict(family=a.family, train_tasks=a.tasks, held_out_seed=1000, held_out_tasks=4, k=a.k,
                sep=1116 if text else 3,  # text: SmolLM2's "\n\n" between demonstrations
                queries_per_task=a.queries or (128 if text else 16), support=a.support, query=a.query,
                inner_steps=a.inner_steps, inner_lr=a.inner_lr or (1e-2 if text else 0.1),
                train_names=a.train.replace("+", ",") if text else "",
                held_out_names=a.held_out.replace("+", ",") if text else "", max_words=a.max_words)
  if first_order:
    c.optimizer.name, c.optimizer.momentum, c.optimizer.lr = "sgd", 0.0, a.lr or (1.0 if text else 0.5)
  else:
    c.optimizer.lr = a.lr or (2e-4 if text else 3e-3)
  c.optimizer.clip_norm = 0.0
  c.schedule.name = "constant"
  c.checkpoint.keep_best = False
  c.wandb.mode = "disabled"
  return config_lib.finalize(c)
