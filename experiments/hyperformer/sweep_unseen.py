"""hyperformer, unseen task (written, not run here): context-conditioned hypernetworks / MoE-LoRA router trained
on rotten_tomatoes + debate_party, then evaluated on convention_party, which they never train on, from the mean
MiniLM sentence embedding of k=16 of its training examples, with no gradient step (`held_out/convention_party/*`
in results.json). Classes are shared across tasks (heads=shared): debate_party's Democratic / Republican are
classes 0 / 1, as convention_party's democrat / republican, so the party head can transfer; rotten_tomatoes'
negative / positive share classes 0 / 1 too.

  python -m launch.launchers experiments/hyperformer/sweep_unseen.py --target=slurm --gpus-per-node=1 ...
  python -m launch.aggregate runs/hyperformer_unseen --group-by=peft.method --out=experiments/hyperformer/results/unseen

Not here yet: the issue's baselines on the same k examples (ICL with a causal LM, and a per-task adapter trained
on only those k examples).
"""

STEPS = 600
SEEDS = (0, 1, 2)
METHODS = ("hyper_adapter", "hyper_lora", "moe_lora")


def get_sweep():
  return {"config": f"configs/multitask.py:steps={STEPS},condition=context,held_out=convention_party,"
                    "tasks=rotten_tomatoes+debate_party",
          "workdir": "runs/hyperformer_unseen", "grid": {"seed": list(SEEDS)},
          "list": [{"arg": f"method={m}", "wandb.mode": "disabled"} for m in METHODS]}
