"""The lora half of sweep_cpu.py (the same points and run directories), so the two methods can run as two
launcher processes side by side:

  python -m launch.launchers experiments/icl_vs_peft/sweep_cpu_lora.py
"""

from pathlib import Path

from launch.sweep import load_file

_paper = load_file(Path(__file__).with_name("sweep.py"), "_icl_vs_peft_sweep")


def get_sweep():
  return _paper.sweep(_paper.peft_points(20, (0,), 200, 100, methods=("lora",)), "runs/icl_vs_peft_cpu")
