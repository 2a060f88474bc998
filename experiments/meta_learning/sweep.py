"""meta_learning, paper-sized (for an accelerator; not run here): SmolLM2-135M with LoRA (r=8 on q, v)
meta-trained on convention_party + debate_party, held out: rotten_tomatoes (k=4 demonstrations from its train
split, 1,203 test queries at the end); no meta-training (steps=0, evaluated as reptile: k-shot and before / after
adaptation) vs MetaICL (1000 steps of 16 k-shot
sequences) vs Reptile and first-order MAML (1000 steps of 4 tasks, 3 inner SGD steps on 8 support examples);
3 seeds.

  python -m launch.launchers experiments/meta_learning/sweep.py --target=slurm --gpus-per-node=1 ...
  python -m launch.aggregate 'runs/meta_learning/*' --group-by=train.objective,total_steps \
    --out=experiments/meta_learning/results/paper
"""

POINTS = ("algorithm=reptile,steps=0", "algorithm=metaicl", "algorithm=reptile", "algorithm=fomaml")


def sweep(arg: str, points, seeds, workdir: str, extra: dict | None = None) -> dict:
  """One point per (algorithm point, seed); `arg` holds the config arguments every point shares."""
  return {"config": "configs/meta_learning.py", "workdir": workdir,
          "grid": {"arg": [f"family=text,{p},{arg}" for p in points]},
          "list": [{"seed": s, **(extra or {})} for s in seeds]}


def get_sweep():
  return sweep("steps=1000,k=4,queries=1203", POINTS, (0, 1, 2), "runs/meta_learning")
