"""ablations, CPU-sized: layer-wise fine-tuning of the top k blocks, k in {1, 4, 6} (lr 1e-4; k=2 is peft_methods'
layers row); 100 steps, seed 0 (sweep.py holds the paper-sized grid: 600 steps, 3 seeds).

  python -m launch.launchers experiments/ablations/sweep_cpu_layers.py
"""

from pathlib import Path

from launch.sweep import load_file

_paper = load_file(Path(__file__).with_name("sweep.py"), "_ablations_sweep")


def get_sweep():
  return _paper.family_sweep(_paper.layers((1, 4, 6)), 100, (0,), "runs/ablations_cpu/layers")
