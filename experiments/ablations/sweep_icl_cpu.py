"""ablations, ICL label corruption, CPU-sized: k=4 demonstrations, the first 200 Rotten Tomatoes test queries,
3 seeds (each a fresh demonstration set per query), P in {0, 25, 50, 75, 100}% incorrect labels (sweep_icl.py holds
the paper-sized grid: k in {4, 8, 16}, every test query, 3 seeds).

  python -m launch.launchers experiments/ablations/sweep_icl_cpu.py
  python -m experiments.ablations.icl_table runs/ablations_cpu/icl_corruption --out=experiments/ablations/results/cpu/icl_corruption
"""

from pathlib import Path

from launch.sweep import load_file

_paper = load_file(Path(__file__).with_name("sweep_icl.py"), "_ablations_sweep_icl")


def get_sweep():
  return _paper.sweep((4,), 200, 3, "runs/ablations_cpu/icl_corruption", percents=(0, 100, 50, 25, 75))
