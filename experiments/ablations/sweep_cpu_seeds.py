"""ablations, CPU-sized: seeds 1 and 2 of every point of sweep_cpu_{layers,adapter,prefix,lora}.py, and seeds 0, 1
and 2 of the points those sweeps left to peft_methods' 100-step sweep (top 2 blocks, reduction factor 16, prefix 10
tokens plain and reparameterised at lr 2e-3, LoRA r=8 on q,v; same config and budget), so that every row of the
ablation tables is read over 3 seeds from this experiment's own runs (finished points are skipped). One family
after another (layers, adapter, prefix, lora), each family's seed 0 points first, then seed 1, then seed 2; 100
steps as the seed-0 sweeps:

  python -m launch.launchers experiments/ablations/sweep_cpu_seeds.py
  python -m launch.aggregate experiments/ablations/results/cpu/lora/summary.json 'runs/ablations_cpu_seeds/*method=lora*' \
      --group-by=peft.targets,peft.r --out=experiments/ablations/results/cpu/lora   (likewise per family: run.sh)
"""

from pathlib import Path

from launch.sweep import load_file

_paper = load_file(Path(__file__).with_name("sweep.py"), "_ablations_sweep")

# The points of each family that peft_methods' 100-step sweep ran at seed 0 (its defaults, written out). The
# reparameterised prefix at 2e-3 is not in the grid, whose reparameterised prefixes run at 2e-4.
SHARED = {"layers": _paper.layers((2,)), "adapter": _paper.adapter((16,)),
          "prefix": [{"arg": "method=prefix", "peft.num_tokens": 10, "peft.projection": p} for p in (False, True)],
          "lora": _paper.lora((8,), ("qv",))}
GRID = {"layers": _paper.layers(), "adapter": _paper.adapter(), "prefix": _paper.prefix(), "lora": _paper.lora()}
FAMILIES = ("layers", "adapter", "prefix", "lora")


def points() -> list[dict]:
  out = []
  for family in FAMILIES:
    extra = [p for p in SHARED[family] if p not in GRID[family]]
    for seed, family_points in ((0, SHARED[family]), (1, GRID[family] + extra), (2, GRID[family] + extra)):
      out += [{"seed": seed, **p} for p in family_points]
  return out


def get_sweep():
  sweep = _paper.family_sweep([], 100, (0,), "runs/ablations_cpu_seeds")
  sweep.pop("grid")
  extra = {"eval_every": 0, "checkpoint_every": 0, "wandb.mode": "disabled"}
  return {**sweep, "list": [{**p, **extra} for p in points()]}
