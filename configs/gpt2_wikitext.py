"""GPT-2 (124M) fine-tuned on WikiText-103, 3 epochs, batch 4 x 1024 tokens; perplexity before, during and after.

  python -m lightft_jax.main --config=configs/gpt2_wikitext.py --workdir=runs/gpt2_wikitext
  python -m lightft_jax.main --config=configs/gpt2_wikitext.py:model=/ckpt/gpt2,method=lora --workdir=DIR
  python -m lightft_jax.main --config=configs/gpt2_wikitext.py:smoke --workdir=/tmp/smoke    # offline, CPU-sized

`model=gpt2` (default) is the Hugging Face checkpoint openai-community/gpt2 (config.json, model.safetensors,
tokenizer files), fetched into the HF cache by huggingface_hub when this config loads (cached after that; set
HF_HUB_OFFLINE=1 to use the cache only); `model=DIR` is any local GPT-2-family checkpoint directory. The data
(task wikitext103: one Wikipedia article per document, split into pieces of at most 3 * 1024 characters so a
long article is trained on whole) is downloaded once from https://wikitext.smerity.com (about 190 MB) into
~/tensorflow_datasets/downloads/wikitext/. Documents are packed into full 1024-token rows (attention and
positions restart at each document), so the perplexities are per packed document piece, not the strided
sliding-window numbers of the GPT-2 paper.

Full fine-tuning (`method=`: any PEFT method; lr 5e-5 for full, 1e-3 otherwise), AdamW with weight decay 0.01,
500 warmup steps then cosine, 3 epochs of the training split (`epochs=`), evaluation on 200 validation rows
every 2000 steps and at the start, the whole test split at the end, a checkpoint every 2000 steps keeping the 2
newest (`checkpoint.max_to_keep=2`) plus the best by validation perplexity, and greedy samples from validation
articles (samples.json / samples.txt).

`smoke`: the same pipeline at CPU size, offline: the tiny-gpt2 preset (random init) with SmolLM2's tokenizer,
Rotten Tomatoes snippets as text instead of WikiText (offline once prepared), 2 steps of batch 4 x 64 tokens.
"""

from lightft_jax.models.assets import smollm2_gguf
from lightft_jax.train import config_lib
from lightft_jax.train.samples import samples_section

GPT2_REPO = "openai-community/gpt2"
GPT2_FILES = ["config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "vocab.json",
              "merges.txt"]


def gpt2_checkpoint() -> str:
  """The local directory of openai-community/gpt2 in the HF cache (downloaded when it is not there)."""
  try:
    from huggingface_hub import snapshot_download
  except ImportError:
    raise ImportError("model=gpt2 fetches openai-community/gpt2 with huggingface_hub (pip install huggingface_hub); "
                      "or pass model=DIR, a local GPT-2 checkpoint directory") from None
  return snapshot_download(GPT2_REPO, allow_patterns=GPT2_FILES)


def get_config(arg=None):
  items = [s.strip() for s in (arg or "").split(",") if s.strip()]
  smoke = "smoke" in items
  a = config_lib.parse_arg(",".join(i for i in items if i != "smoke"), model="gpt2", method="full", epochs=3.0,
                           batch=4, max_length=1024, lr=0.0, eval_every=2000, eval_limit=200, warmup=500,
                           samples=4, max_new_tokens=48)
  c = config_lib.base_config()
  c.seed = 0
  c.epochs, c.batch_size = a.epochs, a.batch
  c.log_every, c.eval_every, c.checkpoint_every = 50, a.eval_every, a.eval_every
  c.checkpoint.max_to_keep = 2

  c.model.name = a.model if a.model != "gpt2" or smoke else gpt2_checkpoint()
  c.model.max_length = a.max_length
  c.peft = {"method": "full"} if a.method == "full" else {"method": a.method}
  c.task.name = "wikitext103"
  c.task.options = {"max_chars": 3 * a.max_length}
  c.task.eval_limit = a.eval_limit

  c.optimizer.name = "adamw"
  c.optimizer.lr = a.lr or (5e-5 if a.method == "full" else 1e-3)
  c.optimizer.weight_decay = 0.01
  c.schedule.name = "cosine"
  c.schedule.warmup_steps = a.warmup

  c.eval.metric, c.eval.mode = "perplexity", "min"
  c.eval.at_start = True
  c.samples = samples_section(num=a.samples, max_new_tokens=a.max_new_tokens, prompt_tokens=32)
  c.wandb.mode = "offline"

  if smoke:  # CPU size, offline
    c.model.name = "tiny-gpt2"
    c.model.tokenizer = str(smollm2_gguf())
    c.model.overrides = {"vocab_size": 49152}
    c.model.max_length = 64
    c.task.name, c.task.options = "rotten_tomatoes_lm", {}
    c.epochs, c.total_steps = 0.0, 2
    c.log_every, c.eval_every, c.checkpoint_every = 1, 0, 1
    c.task.eval_limit = 8
    c.task.test_split = "test"
    c.optimizer.lr = 1e-3
    c.schedule.warmup_steps = 0
    c.samples = samples_section(num=2, max_new_tokens=8, prompt_tokens=8)
  return config_lib.finalize(c)
