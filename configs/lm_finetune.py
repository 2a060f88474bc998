"""Causal language-model fine-tuning of a decoder on real text, documents packed into full rows.

  python -m lightft_jax.main --config=configs/lm_finetune.py --workdir=runs/lm_finetune
  python -m lightft_jax.main --config=configs/lm_finetune.py:method=full,steps=500,data=wikitext103 --workdir=DIR
  python -m lightft_jax.main --config=configs/lm_finetune.py:data=notes/,model=/ckpt/gpt2 --workdir=DIR

By default LoRA (r=8 on every linear layer) on SmolLM2-135M (the bundled GGUF, dequantized) over the Rotten
Tomatoes review snippets as text (offline once that dataset is prepared; one snippet per document). Perplexity
on the validation split before the first step (results.json `eval_at_start`), every `eval_every` steps and at
the end (`eval`, on the first `eval_limit` packed rows each time, so the numbers compare), and on the whole test
split at the end (`test`); a few greedy samples, prompts taken from validation documents, go to
samples.json / samples.txt in the run directory.

Arguments:
  model=   smollm2 (default), an HF checkpoint directory (GPT-2, Llama, Mistral, ...) or .gguf file, or a preset
           (tiny-gpt2, tiny-llama, ...: random init with SmolLM2's tokenizer, for smoke runs)
  method=  lora (default) or any PEFT method (`lightft_jax.peft.methods()`: full, ia3, prefix, prompt, adapter, ...)
  data=    rotten_tomatoes (default: task rotten_tomatoes_lm); wikitext103 / wikitext2 (downloaded once); another
           registered LM task (lm1b, wiki40b, wikipedia); a .txt file (one document per blank-line-separated
           paragraph), a directory of .txt files (one document per file) or a .jsonl file (`text_field`) -- a
           single path holds out 5% of its documents for validation and 5% for test; or any TFDS dataset name
           with a text feature (`text_field`, default "text"; prepared with `tfds build`)
  steps= (100), epochs= (> 0: passes over the training data instead of steps), batch= (8), lr= (default 5e-5
  for full / none, 1e-4 for layers, else 1e-3), max_length= (64 tokens per packed row), r=, targets= (LoRA),
  max_chars= (documents longer than this many characters are split, so they are trained on whole rather than
  cut at max_length tokens; default 3 * max_length for wikitext, else 0 = off), eval_every=, eval_limit=
  (packed rows per validation pass; 0: all), samples= (how many), max_new_tokens= (per sample).
"""

from pathlib import Path

from lightft_jax import peft
from lightft_jax.models import PRESETS
from lightft_jax.models.assets import smollm2_gguf
from lightft_jax.train import config_lib
from lightft_jax.train.samples import samples_section

SMOLLM2_VOCAB = 49152  # presets get SmolLM2's tokenizer, so its vocabulary
METHOD_LR = {"full": 5e-5, "none": 5e-5, "layers": 1e-4}
NAMED_DATA = {"rotten_tomatoes": "rotten_tomatoes_lm", "wikitext103": "wikitext103", "wikitext2": "wikitext2",
              "lm1b": "lm1b", "wiki40b": "wiki40b", "wikipedia": "wikipedia"}
WIKITEXT = ("wikitext103", "wikitext2")


def data_section(data: str, text_field: str = "text", max_chars: int = 0) -> tuple[str, dict, dict]:
  """`data=` -> (task name, task options, split overrides {config key: split})."""
  chars = {"max_chars": max_chars} if max_chars else {}
  if data in NAMED_DATA:
    name = NAMED_DATA[data]
    splits = {"task.eval_split": "test"} if data == "lm1b" else {}  # lm1b has train / test only
    if data == "wikipedia":
      raise ValueError("data=wikipedia has one split (train); use lm_text or tfds_lm with your own split_map")
    return name, (chars if name in ("rotten_tomatoes_lm",) + WIKITEXT else {}), splits
  path = Path(data).expanduser()
  if path.exists() or path.suffix in (".txt", ".jsonl"):
    return "lm_text", {"path": str(path), "text_field": text_field, **chars}, {}
  return "tfds_lm", {"builder": data, "text_field": text_field, **chars}, {}


def model_section(c, model: str) -> None:
  """model= -> the model section: the SmolLM2 alias, a checkpoint directory / .gguf, or a preset with
  SmolLM2's tokenizer."""
  c.model.name = model
  if model in PRESETS:
    c.model.tokenizer = str(smollm2_gguf())
    c.model.overrides = {"vocab_size": SMOLLM2_VOCAB}


def peft_section(method: str, r: int = 8, targets: str = "all_linear") -> dict:
  chosen = {"r": r, "alpha": 2 * r, "targets": targets} if method == "lora" else {}
  section = {"method": method, **peft.options(method), **chosen}
  peft.check_config(section)
  return section


def get_config(arg=None):
  a = config_lib.parse_arg(arg, model="smollm2", method="lora", data="rotten_tomatoes", text_field="text",
                           steps=100, epochs=0.0, batch=8, lr=0.0, max_length=64, r=8, targets="all_linear",
                           max_chars=-1, eval_every=50, eval_limit=64, warmup=10, samples=4, max_new_tokens=32)
  c = config_lib.base_config()
  c.seed = 0
  c.total_steps, c.epochs, c.batch_size = a.steps, a.epochs, a.batch
  c.log_every, c.eval_every, c.checkpoint_every = 10, a.eval_every, a.eval_every

  model_section(c, a.model)
  c.model.max_length = a.max_length
  c.peft = peft_section(a.method, a.r, a.targets)

  max_chars = a.max_chars if a.max_chars >= 0 else (3 * a.max_length if a.data in WIKITEXT else 0)
  c.task.name, options, splits = data_section(a.data, a.text_field, max_chars)
  c.task.options = options
  for key, split in splits.items():
    config_lib.set_key(c, key, split)
  c.task.eval_limit = a.eval_limit

  lr = a.lr or METHOD_LR.get(a.method, 1e-3)
  c.optimizer.name = "adamw"
  c.optimizer.lr = lr
  c.optimizer.weight_decay = 0.0 if a.method not in METHOD_LR else 0.01
  c.schedule.name = "cosine"
  c.schedule.warmup_steps = a.warmup if a.epochs else min(a.warmup, a.steps // 10)  # short runs: less warmup

  c.eval.metric, c.eval.mode = "perplexity", "min"
  c.eval.at_start = True
  c.samples = samples_section(num=a.samples, max_new_tokens=a.max_new_tokens, prompt_tokens=12)
  c.wandb.mode = "offline"
  return config_lib.finalize(c)
