"""ablations, CPU-sized: Houlsby adapters at reduction factor {2, 8, 32, 128} (16 is peft_methods' adapter row, same
config and budget); 100 steps, seed 0 (sweep.py holds the paper-sized grid: 600 steps, 3 seeds).

  python -m launch.launchers experiments/ablations/sweep_cpu_adapter.py
"""

from pathlib import Path

from launch.sweep import load_file

_paper = load_file(Path(__file__).with_name("sweep.py"), "_ablations_sweep")


def get_sweep():
  return _paper.family_sweep(_paper.adapter((128, 2, 8, 32)), 100, (0,), "runs/ablations_cpu/adapter")
