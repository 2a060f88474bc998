"""peft_methods, CPU-sized: the methods of sweep.py at batch 32 and max length 64 but 100 steps and one seed
(about an hour on 2 CPU cores). The committed results/cpu/ come from:

  python -m launch.launchers experiments/peft_methods/sweep_cpu.py
  python -m launch.aggregate runs/peft_methods_cpu --group-by=arg,peft.config,peft.placement,peft.projection,peft.rslora,peft.dora \
      --out=experiments/peft_methods/results/cpu
"""

from pathlib import Path

from launch.sweep import load_file

_paper = load_file(Path(__file__).with_name("sweep.py"), "_peft_methods_sweep")


def get_sweep():
  return _paper.sweep(100, (0,), "runs/peft_methods_cpu")
