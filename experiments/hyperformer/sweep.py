"""hyperformer, paper-sized (Karimi Mahabadi et al. 2021): one multi-task run per method on the default mixture
of configs/multitask.py (rotten_tomatoes + convention_party + debate_party, all-MiniLM-L6-v2, batch 32,
max length 64, temperature-2 sampling, per-task classes of one classifier), the config's 600 steps, 3 seeds.
For accelerators:

  python -m launch.launchers experiments/hyperformer/sweep.py --target=slurm --gpus-per-node=1 ...
  python -m launch.aggregate runs/hyperformer --group-by=peft.method --out=experiments/hyperformer/results/paper

The CPU-sized sweeps that ran here are sweep_cpu.py (same methods, 100 steps, seed 0, no periodic validation) and
sweep_cpu_seeds.py (seeds 1 and 2 of every method); the unseen-task setting is sweep_unseen.py.
"""

STEPS = 600
SEEDS = (0, 1, 2)
CONFIG = "configs/multitask.py"

# (label, the multitask config's method argument): the rows of the table.
METHODS = (
    ("hyper_adapter (one hypernetwork -> adapters)", "hyper_adapter"),
    ("hyper_lora (one hypernetwork -> LoRA)", "hyper_lora"),
    ("per-task adapters", "task_adapters"),
    ("one shared adapter", "adapter"),
    ("MoE-LoRA (task router)", "moe_lora"),
    ("full fine-tuning", "full"),
)


def sweep(steps: int, seeds, workdir: str, eval_every: int, methods=tuple(m for _, m in METHODS)) -> dict:
  """`methods` x seeds on the default mixture. With eval_every > 0, validation (eval_limit examples per task)
  every `eval_every` steps picks the best checkpoint by the task average; with 0, the last step is evaluated
  (validation, eval_limit examples per task) and tested. The test splits are read once, at the end. No W&B logging
  (metrics.jsonl and results.json hold the figures)."""
  return {"config": f"{CONFIG}:steps={steps},eval_every={eval_every}", "workdir": workdir,
          "grid": {"seed": list(seeds)},
          "list": [{"arg": f"method={m}", "wandb.mode": "disabled"} for m in methods]}


def get_sweep():
  return sweep(STEPS, SEEDS, "runs/hyperformer", 100)
