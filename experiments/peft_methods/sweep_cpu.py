"""peft_methods, CPU-sized: the methods of sweep.py at batch 32 and max length 64 but 100 steps, seed 0 (27
minutes on 2 CPU cores); seeds 1 and 2 are sweep_cpu_seeds.py's. run.sh aggregates them into results/cpu/.

  python -m launch.launchers experiments/peft_methods/sweep_cpu.py
"""

from pathlib import Path

from launch.sweep import load_file

_paper = load_file(Path(__file__).with_name("sweep.py"), "_peft_methods_sweep")


def get_sweep():
  return _paper.sweep(100, (0,), "runs/peft_methods_cpu")
