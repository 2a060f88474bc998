"""icl_vs_peft, CPU-sized: LoRA and IA3 for 20 steps (batch min(k, 8)) on the k examples of draw 0, for k in
4, 16, 32; the first 200 test examples; validation accuracy on its first 100 at the end. The ICL side is
sweep_icl_cpu.py.

  python -m launch.launchers experiments/icl_vs_peft/sweep_cpu.py
"""

from pathlib import Path

from launch.sweep import load_file

_paper = load_file(Path(__file__).with_name("sweep.py"), "_icl_vs_peft_sweep")


def get_sweep():
  return _paper.sweep(_paper.peft_points(20, (0,), 200, 100), "runs/icl_vs_peft_cpu")
