"""ablations, CPU-sized: LoRA on q,v at rank {1, 64} (the ends of the rank grid; r=8 on q,v is peft_methods'
LoRA row). Other targets (all attention, all linear) did not fit the shared CPU's time: they are in sweep.py; 100 steps, seed 0
(the subset that fits a shared 2-core CPU; sweep.py holds the whole grid).

  python -m launch.launchers experiments/ablations/sweep_cpu_lora.py
"""

from pathlib import Path

from launch.sweep import load_file

_paper = load_file(Path(__file__).with_name("sweep.py"), "_ablations_sweep")


def get_sweep():
  points = [{"arg": f"method=lora,targets=qv,r={r}"} for r in (1, 64)]
  return _paper.family_sweep(points, 100, (0,), "runs/ablations_cpu/lora")
