"""ablations, CPU-sized: prefix length {1, 5, 20, 50} without reparameterisation (lr 2e-3; 10 is peft_methods' prefix
row) and {1, 5, 10, 20, 50} with it (lr 2e-4: at 2e-3 peft_methods' reparameterised row did not learn); 100 steps,
seed 0 (sweep.py holds the paper-sized grid: 600 steps, 3 seeds).

  python -m launch.launchers experiments/ablations/sweep_cpu_prefix.py
"""

from pathlib import Path

from launch.sweep import load_file

_paper = load_file(Path(__file__).with_name("sweep.py"), "_ablations_sweep")


def get_sweep():
  points = _paper.prefix(tokens=(1, 50, 5, 20), reparam_tokens=(10, 1, 50, 5, 20))
  return _paper.family_sweep(points, 100, (0,), "runs/ablations_cpu/prefix")
