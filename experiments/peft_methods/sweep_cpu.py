"""peft_methods, CPU-sized: the methods of sweep.py at batch 32 and max length 64 but 100 steps and one seed
(about an hour on 2 CPU cores). The committed results/cpu/ come from:

  python -m launch.launchers experiments/peft_methods/sweep_cpu.py
  python -m launch.aggregate runs/peft_methods_cpu --group-by=arg,peft.config,peft.placement,peft.projection,peft.rslora,peft.dora \
      --out=experiments/peft_methods/results/cpu
"""

import importlib.util
from pathlib import Path

_spec = importlib.util.spec_from_file_location("_peft_methods_sweep", Path(__file__).with_name("sweep.py"))
_paper = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_paper)


def get_sweep():
  return _paper.sweep(100, (0,), "runs/peft_methods_cpu")
