"""ablations, paper-sized: one-factor-at-a-time sweeps of the quickstart setting (all-MiniLM-L6-v2, Rotten
Tomatoes, batch 32, max length 64) at the PyTorch reference's 600 steps and 3 seeds. For accelerators:

  python -m launch.launchers experiments/ablations/sweep.py --target=slurm --gpus-per-node=1 ...
  python -m launch.aggregate 'runs/ablations/lora_*' --group-by=peft.targets,peft.r --out=experiments/ablations/results/paper/lora
  (and likewise adapter_*, prefix_*, layers_*, with the group keys of GROUP_BY)

The CPU-sized sweeps that ran here are sweep_cpu_<family>.py (these points, 100 steps, one seed).
The ICL label-corruption ablation is sweep_icl.py / sweep_icl_cpu.py (the icl_eval job, not a training run).
"""

STEPS = 600
SEEDS = (0, 1, 2)
CONFIG = "configs/quickstart.py"

LORA_RANKS = (1, 2, 4, 8, 16, 64)
LORA_TARGETS = ("qv", "attn", "all_linear")  # q,v; all attention projections (q, k, v, out); every linear layer
ADAPTER_REDUCTION = (2, 8, 16, 32, 128)  # Houlsby adapters (the adapter method's default placement)
PREFIX_TOKENS = (1, 5, 10, 20, 50)
PREFIX_REPARAM_LR = 2e-4  # reparameterised prefixes (MLP over the prefix embeddings) at a tenth of 2e-3: at 2e-3 the
                          # peft_methods run (10 tokens) did not learn
LAYERS_TOP_K = (1, 2, 4, 6)  # MiniLM has 6 blocks: top 6 trains every block (embeddings stay frozen)

# The config keys each family's table is grouped by (launch.aggregate --group-by).
GROUP_BY = {"lora": "peft.targets,peft.r", "adapter": "peft.reduction_factor",
            "prefix": "peft.projection,peft.num_tokens,optimizer.lr", "layers": "peft.top_k"}


def lora(ranks=LORA_RANKS, targets=LORA_TARGETS):
  return [{"arg": f"method=lora,targets={t},r={r}"} for t in targets for r in ranks]


def adapter(factors=ADAPTER_REDUCTION):
  return [{"arg": "method=adapter", "peft.reduction_factor": f} for f in factors]


def prefix(tokens=PREFIX_TOKENS, reparam_tokens=PREFIX_TOKENS):
  plain = [{"arg": "method=prefix", "peft.num_tokens": n, "peft.projection": False} for n in tokens]
  reparam = [{"arg": f"method=prefix,lr={PREFIX_REPARAM_LR}", "peft.num_tokens": n, "peft.projection": True}
             for n in reparam_tokens]
  return plain + reparam


def layers(top_k=LAYERS_TOP_K):
  return [{"arg": "method=layers", "peft.top_k": k} for k in top_k]


def family_sweep(points: list[dict], steps: int, seeds, workdir: str) -> dict:
  """One family's points x seeds, each in WORKDIR/<point name>; no periodic evaluation or checkpoints (the
  test split is read once, at the end); no W&B logging (metrics.jsonl and results.json hold the figures)."""
  return {"config": f"{CONFIG}:steps={steps},baselines=False", "workdir": workdir,
          "grid": {"seed": list(seeds)},
          "list": [{**p, "eval_every": 0, "checkpoint_every": 0, "wandb.mode": "disabled"} for p in points]}


def get_sweep():
  """Every family's full grid, one sweep (the families' run directories share runs/ablations/)."""
  return family_sweep(lora() + adapter() + prefix() + layers(), STEPS, SEEDS, "runs/ablations")
