"""icl_vs_peft, CPU-sized: LoRA and IA3 fine-tuned on the k examples of draws 0 and 1 (k = 4, 16, 32; draws
outermost) at the learning rate validation preferred (sweep_tune_cpu.py at k=16: LoRA 1e-3 over 3e-3, IA3 1e-2 over 3e-2;
results/cpu/tune/summary.md), otherwise as sweep_cpu.py (20 steps, the first 200 test examples, validation
accuracy on its first 100 at the end). These are the fine-tuned rows the README reports first.

  python -m launch.launchers experiments/icl_vs_peft/sweep_cpu_selected.py
"""

from pathlib import Path

from launch.sweep import load_file

_paper = load_file(Path(__file__).with_name("sweep.py"), "_icl_vs_peft_sweep")

SELECTED_LR = {"lora": 1e-3, "ia3": 1e-2}


def get_sweep():
  points = [f"{p},lr={SELECTED_LR[m]}" for s in (0, 1) for m in _paper.METHODS
            for p in _paper.peft_points(20, (s,), 200, 100, methods=(m,))]
  return _paper.sweep(points, "runs/icl_vs_peft_cpu_selected")
