"""ablations, CPU-sized: layer-wise fine-tuning of the top k blocks, k in {1, 4} (lr 1e-4; k=2 is peft_methods'
layers row); 100 steps, seed 0
(written, NOT run: it did not fit the shared CPU's time; sweep.py holds the whole grid).

  python -m launch.launchers experiments/ablations/sweep_cpu_layers.py
"""

import importlib.util
from pathlib import Path

_spec = importlib.util.spec_from_file_location("_ablations_sweep", Path(__file__).with_name("sweep.py"))
_paper = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_paper)


def get_sweep():
  return _paper.family_sweep(_paper.layers((1, 4)), 100, (0,), "runs/ablations_cpu/layers")
