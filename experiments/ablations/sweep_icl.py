"""ablations, ICL demonstration label corruption (Min et al. 2022, "Rethinking the Role of Demonstrations",
Sec. 5.1 / Fig. 8): P% of the k demonstrations show an incorrect label (label mode corrupt_P of
lightft_jax.icl.prompts.demonstration_labels), P in {0, 25, 50, 75, 100}. The icl_eval job
(configs/icl_eval.py) with SmolLM2-135M-Instruct (the Q4_1 GGUF, dequantised), Rotten Tomatoes test queries,
demonstrations drawn at random from the training split, a new demonstration set for every query
(icl.per_query_demos, so the accuracy averages over demonstration sets rather than hanging on one), direct
log-likelihood scoring without calibration (as Min et al.'s "direct" models).

Paper-sized (for an accelerator): k in {4, 8, 16}, every test query (1,203), 3 seeds:
  python -m launch.launchers experiments/ablations/sweep_icl.py --target=slurm --gpus-per-node=1 ...
  python -m experiments.ablations.icl_table runs/ablations/icl_corruption --out=experiments/ablations/results/paper/icl_corruption
The CPU-sized sweep that ran here is sweep_icl_cpu.py.
"""

PERCENTS = (0, 100, 50, 25, 75)  # the ends first: the sweep runs in this order


def sweep(ks: tuple[int, ...], limit: int, seeds: int, workdir: str, percents=PERCENTS) -> dict:
  return {"config": f"configs/icl_eval.py:limit={limit},seeds={seeds},calibrate=False", "workdir": workdir,
          "list": [{"arg": f"labels=corrupt_{p}", "icl.ks": ks, "icl.per_query_demos": True} for p in percents]}


def get_sweep():
  return sweep((4, 8, 16), 0, 3, "runs/ablations/icl_corruption")
