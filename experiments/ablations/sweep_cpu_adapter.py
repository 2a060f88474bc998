"""ablations, CPU-sized: Houlsby adapter reduction factor {128, 2} (16 is peft_methods' Houlsby row); 100 steps, seed 0
(the subset that fits a shared 2-core CPU; sweep.py holds the whole grid).

  python -m launch.launchers experiments/ablations/sweep_cpu_adapter.py
"""

from pathlib import Path

from launch.sweep import load_file

_paper = load_file(Path(__file__).with_name("sweep.py"), "_ablations_sweep")


def get_sweep():
  return _paper.family_sweep(_paper.adapter((128, 2)), 100, (0,), "runs/ablations_cpu/adapter")
