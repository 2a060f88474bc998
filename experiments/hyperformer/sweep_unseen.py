"""hyperformer, unseen task: context-conditioned hypernetworks / MoE-LoRA router trained on rotten_tomatoes +
debate_party, then evaluated on convention_party, which they never train on, from the mean MiniLM sentence
embedding of k=16 of its training examples, with no gradient step (`held_out/convention_party/*` in results.json).
Classes are shared across tasks (heads=shared): debate_party's Democratic / Republican are classes 0 / 1, as
convention_party's democrat / republican, so the party head can transfer; rotten_tomatoes' negative / positive
share classes 0 / 1 too.

The issue's baselines on convention_party from k=16 examples are their own sweeps (a sweep has one config file):
  adapter_sweep  one Houlsby adapter (reduction 16) + classifier on all-MiniLM-L6-v2 (configs/quickstart.py)
                 trained on only the k examples `task.options.train_k` / `train_k_seed` select
                 (`data.tasks.k_shot_indices`: the same k examples the ICL run shows for that seed)
  icl_sweep      in-context learning with SmolLM2-135M-Instruct (configs/icl_eval.py; the encoder is not a language
                 model) from the k demonstrations seed s draws (`icl.seeds`), scored by the log-likelihood of
                 " democrat" / " republican", plain and calibrated (acc, acc_calibrated)
The hypernetwork's own k examples (`data.mixture.context_examples`) are the same draw: `k_shot_indices` for the
run's seed, so seed s conditions on the k examples the adapter of train_k_seed=s trains on and ICL seed s shows.

Paper-sized (for an accelerator), the files sweep_unseen.py, sweep_unseen_adapter.py, sweep_unseen_icl.py:
  python -m launch.launchers experiments/hyperformer/sweep_unseen.py --target=slurm --gpus-per-node=1 ...
  python -m launch.aggregate runs/hyperformer_unseen --group-by=job,task.name,peft.method \\
      --out=experiments/hyperformer/results/unseen
The CPU-sized sweeps that ran here are sweep_unseen_cpu*.py (run_unseen.sh).
"""

STEPS = 600
SEEDS = (0, 1, 2)
K = 16
HELD_OUT = "convention_party"
SOURCE_TASKS = "rotten_tomatoes+debate_party"
METHODS = ("hyper_adapter", "hyper_lora", "moe_lora")


def sweep(steps: int, seeds, workdir: str, eval_every: int = 100, methods=METHODS) -> dict:
  """The context-conditioned methods trained on SOURCE_TASKS, HELD_OUT evaluated from K of its examples."""
  return {"config": f"configs/multitask.py:steps={steps},eval_every={eval_every},condition=context,"
                    f"context_k={K},held_out={HELD_OUT},tasks={SOURCE_TASKS}",
          "workdir": workdir, "grid": {"seed": list(seeds)},
          "list": [{"arg": f"method={m}", "wandb.mode": "disabled"} for m in methods]}


def adapter_sweep(steps: int, seeds, workdir: str) -> dict:
  """A per-task adapter trained on only the K examples of HELD_OUT that seed s draws (train_k_seed = s), batch K
  (each step one pass over them), warm-up a tenth of the steps, the quickstart's lr 2e-3 (head 1e-2); the last
  step is validated (256 examples) and tested (the whole split). Not tuned."""
  return {"config": f"configs/quickstart.py:method=adapter,steps={steps},batch={K},warmup={max(1, steps // 10)},"
                    "baselines=False",
          "workdir": workdir,
          "list": [{"seed": s, "task.name": HELD_OUT, "task.options.train_k": K, "task.options.train_k_seed": s,
                    "eval_every": 0, "wandb.mode": "disabled"} for s in seeds]}


def icl_sweep(seeds, limit: int, workdir: str) -> dict:
  """SmolLM2-135M-Instruct, K demonstrations, the first `limit` test queries (0: all); one run per seed s, showing
  the K examples seed s draws (`icl.seeds`), so that each draw is a run of its own, as the trained rows' seeds."""
  return {"config": f"configs/icl_eval.py:task={HELD_OUT},k={K},limit={limit}",
          "workdir": workdir, "list": [{"seed": s, "icl.seeds": (s,), "wandb.mode": "disabled"} for s in seeds]}


def get_sweep():
  return sweep(STEPS, SEEDS, "runs/hyperformer_unseen/hyper")
