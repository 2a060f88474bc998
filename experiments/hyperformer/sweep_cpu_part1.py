"""hyperformer, CPU-sized, methods sweep_cpu.PARTS[0] (same points and run directories as sweep_cpu.py).

  python -m launch.launchers experiments/hyperformer/sweep_cpu_part1.py
"""

import importlib.util
from pathlib import Path

_spec = importlib.util.spec_from_file_location("_hyperformer_sweep_cpu", Path(__file__).with_name("sweep_cpu.py"))
_cpu = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_cpu)


def get_sweep():
  return _cpu.get_sweep(1)
