"""ablations, CPU-sized: prefix length {1, 50} without reparameterisation (lr 2e-3; 10 is peft_methods' prefix row).
The reparameterised prefixes (sweep.py, lr 2e-4) did not fit the shared CPU's time; 100 steps, seed 0
(the subset that fits a shared 2-core CPU; sweep.py holds the whole grid).

  python -m launch.launchers experiments/ablations/sweep_cpu_prefix.py
"""

from pathlib import Path

from launch.sweep import load_file

_paper = load_file(Path(__file__).with_name("sweep.py"), "_ablations_sweep")


def get_sweep():
  return _paper.family_sweep(_paper.prefix(tokens=(1, 50), reparam_tokens=()), 100, (0,), "runs/ablations_cpu/prefix")
