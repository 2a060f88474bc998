"""ablations, CPU-sized: prefix length {1, 50} without reparameterisation (lr 2e-3; 10 is peft_methods' prefix row).
The reparameterised prefixes (sweep.py, lr 2e-4) did not fit the shared CPU's time; 100 steps, seed 0
(the subset that fits a shared 2-core CPU; sweep.py holds the whole grid).

  python -m launch.launchers experiments/ablations/sweep_cpu_prefix.py
"""

import importlib.util
from pathlib import Path

_spec = importlib.util.spec_from_file_location("_ablations_sweep", Path(__file__).with_name("sweep.py"))
_paper = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_paper)


def get_sweep():
  return _paper.family_sweep(_paper.prefix(tokens=(1, 50), reparam_tokens=()), 100, (0,), "runs/ablations_cpu/prefix")
