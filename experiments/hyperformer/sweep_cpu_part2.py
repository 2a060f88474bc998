"""hyperformer, CPU-sized, methods sweep_cpu.PARTS[1] (same points and run directories as sweep_cpu.py).

  python -m launch.launchers experiments/hyperformer/sweep_cpu_part2.py
"""

from pathlib import Path

from launch.sweep import load_file

_cpu = load_file(Path(__file__).with_name("sweep_cpu.py"), "_hyperformer_sweep_cpu")


def get_sweep():
  return _cpu.get_sweep(2)
