"""ablations, CPU-sized: LoRA rank {1, 2, 4, 8, 16, 64} x targets {q,v; all attention; all linear}, every point of
sweep.py's grid except r=8 on q,v (peft_methods' LoRA row, same config and budget); 100 steps, seed 0 (sweep.py
holds the paper-sized grid: 600 steps, 3 seeds).

  python -m launch.launchers experiments/ablations/sweep_cpu_lora.py
"""

from pathlib import Path

from launch.sweep import load_file

_paper = load_file(Path(__file__).with_name("sweep.py"), "_ablations_sweep")


def get_sweep():
  points = [p for p in _paper.lora() if p["arg"] != "method=lora,targets=qv,r=8"]
  return _paper.family_sweep(points, 100, (0,), "runs/ablations_cpu/lora")
