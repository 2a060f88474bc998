"""In-context learning against parameter-efficient fine-tuning on the same k examples (T-Few, Liu et al. 2022),
SmolLM2-135M on Rotten Tomatoes: experiments/icl_vs_peft.

  # k-shot ICL, calibrated and not (one run scores every k and seed; acc and acc_calibrated in results.json)
  python -m lightft_jax.main --config=configs/icl_vs_peft.py:method=icl,ks=0+4+16+32,seeds=2 --workdir=runs/icl
  # LoRA / IA3 fine-tuned on exactly the k training examples ICL shows for seed s (task.options.train_k)
  python -m lightft_jax.main --config=configs/icl_vs_peft.py:method=lora,k=16,seed=0 --workdir=runs/lora_k16_s0

Both read the same prompt, encoded as the tokenizer encodes a prompt (no BOS for SmolLM2; `icl.add_bos="auto"`,
`Tokenizer.encode_prompt`): "Review: {text}\\n{cue}:" (cue= below), then " negative" / " positive"
(the first token of each, one token here) scored by the LM at the prompt's last token; fine-tuning trains that
score with cross-entropy (`task.kind="verbalized"`, PET-style), so a fine-tuning run at step 0 is ICL with k=0.
ICL draws its k demonstrations from the whole training split with `np.random.default_rng([seed, k])`;
`task.options.train_k` / `train_k_seed` give fine-tuning the same k examples (`data.tasks.k_shot_indices`).
Queries: the first `limit` test examples (ICL `icl.query_limit`, fine-tuning `task.options.split_limits`);
fine-tuning is evaluated every `eval_every` steps on the first `eval_limit` validation examples (the split its
hyperparameters were chosen on).

Arguments:
  method=  icl | lora (r=8, alpha 16, q and v) | ia3 (k, v and the MLP's down projection input) | any PEFT method
  ks=      icl: the numbers of demonstrations, "+"-separated (0+4+16+32)
  k=       fine-tuning: the training set size
  seeds=   icl: how many demonstration draws (seeds 0..seeds-1)
  seed=    fine-tuning: which draw of k examples (and the run's seed)
  steps=, lr= (0: the method's default below), batch= (0: min(k, 8)), limit= (test queries; 0: all), eval_every=,
  eval_limit= (validation examples), at_start= (validation before the first step), model= (smollm2 | checkpoint dir
  | .gguf), calibrate= (icl)
  cue=     the word the prompt ends with before the answer ("Answer": "...\\nAnswer:"; task.answer_prefix)
  split=   icl: the split the queries come from (test; validation to choose settings on)
"""

from pathlib import Path

from lightft_jax import peft
from lightft_jax.train import config_lib

TEMPLATE = "Review: {text}"  # + "\n{cue}:" (task.answer_prefix for fine-tuning, the ICL template's end)
METHOD_LR = {"lora": 3e-3, "ia3": 3e-2}  # fixed before the CPU runs; validation preferred 1e-3 / 1e-2 (README)


def _sibling(name: str):
  return config_lib.config_module(Path(__file__).with_name(f"{name}.py"))


def icl_config(a):
  c = _sibling("icl_eval").get_config(f"task=rotten_tomatoes,k={a.ks},model={a.model},limit={a.limit},"
                                      f"seeds={a.seeds},calibrate={a.calibrate}")
  c.unlock()
  c.prompt.input_template = f"{TEMPLATE}\n{a.cue}:"
  c.task.test_split = a.split
  c.prompt.verbalizers = ("negative", "positive")
  c.icl.add_bos = "auto"  # as the fine-tuning formatter (data.formats.decoder_verbalized): the tokenizer's encoding
  return config_lib.finalize(c)


def peft_section(method: str) -> dict:
  chosen = {"r": 8, "alpha": 16, "targets": "qv"} if method == "lora" else {}
  section = {"method": method, **peft.options(method), **chosen}
  peft.check_config(section)
  return section


def get_config(arg=None):
  a = config_lib.parse_arg(arg, method="lora", k=16, ks="0+4+16+32", seeds=2, seed=0, steps=20, lr=0.0, batch=0,
                           limit=200, eval_every=0, eval_limit=100, at_start=False, model="smollm2", calibrate=True,
                           cue="Answer", split="test")
  if a.method == "icl":
    return icl_config(a)
  k = a.k
  c = config_lib.base_config()
  c.seed = a.seed
  c.total_steps, c.batch_size = a.steps, a.batch or min(k, 8)
  c.log_every, c.eval_every, c.checkpoint_every = 5, a.eval_every, 0
  c.model.name = a.model
  c.model.max_length = 128
  c.peft = peft_section(a.method)
  c.task.name = "rotten_tomatoes"
  c.task.kind = "verbalized"
  c.task.template = TEMPLATE
  c.task.answer_prefix = f"\n{a.cue}:"
  c.task.padding = "bucket"
  c.task.options = {"train_k": k, "train_k_seed": a.seed, **({"split_limits": {"test": a.limit}} if a.limit else {})}
  c.task.eval_limit = a.eval_limit
  c.eval.batch_size = 32
  c.eval.metric = "accuracy"
  c.eval.at_start = a.at_start
  c.eval.report_every_eval = False
  c.optimizer.name = "adamw"
  c.optimizer.lr = a.lr or METHOD_LR.get(a.method, 1e-3)
  c.schedule.name = "cosine"
  c.schedule.warmup_steps = min(5, a.steps // 10)
  c.wandb.mode = "disabled"
  return config_lib.finalize(c)
