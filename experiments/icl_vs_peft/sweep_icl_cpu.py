"""icl_vs_peft, CPU-sized ICL: k in 0, 4, 16, 32, draws 0-4, calibrated and not (one run), the first 200
test examples.

  python -m launch.launchers experiments/icl_vs_peft/sweep_icl_cpu.py
"""

from pathlib import Path

from launch.sweep import load_file

_paper = load_file(Path(__file__).with_name("sweep.py"), "_icl_vs_peft_sweep")


def get_sweep():
  return _paper.sweep(_paper.icl_points(_paper.DRAWS, 200), "runs/icl_vs_peft_cpu_icl")
