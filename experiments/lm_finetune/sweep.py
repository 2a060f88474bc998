"""lm_finetune, paper-sized (for an accelerator; not run here): LoRA (r=8, every linear layer, lr 1e-3) and full
fine-tuning (lr 5e-5) of SmolLM2-135M on WikiText-103, rows of 1024 tokens, batch 8, 5000 steps, 3 seeds;
validation perplexity on 200 packed rows at the start, every 500 steps and at the end; the whole test split at
the end. The data is downloaded once from https://wikitext.smerity.com (about 190 MB, into
~/tensorflow_datasets/downloads/wikitext/) when the first run opens it.

  python -m launch.launchers experiments/lm_finetune/sweep.py --target=slurm --gpus-per-node=1 ...
  python -m launch.aggregate runs/lm_finetune --group-by=peft.method --out=experiments/lm_finetune/results/paper
  python -m experiments.lm_finetune.table --results=experiments/lm_finetune/results/paper --write
"""

METHODS = ("lora", "full")


def sweep(arg: str, seeds, workdir: str, extra: dict | None = None) -> dict:
  """One point per (method, seed); `arg` holds the config arguments every point shares."""
  return {"config": "configs/lm_finetune.py", "workdir": workdir,
          "grid": {"arg": [f"method={m},{arg}" for m in METHODS]},
          "list": [{"seed": s, **(extra or {})} for s in seeds]}


def get_sweep():
  return sweep("data=wikitext103,steps=5000,batch=8,max_length=1024,eval_every=500,eval_limit=200,warmup=200",
               (0, 1, 2), "runs/lm_finetune")
