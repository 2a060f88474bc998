"""peft_methods, CPU-sized: seeds 1 and 2 of sweep_cpu.py's methods (everything else as there: 100 steps, batch 32,
max length 64), so that every row of the 100-step table is read over 3 seeds (51 minutes on 2 CPU cores).
Aggregated with sweep_cpu.py's seed-0 runs by run.sh:

  python -m launch.launchers experiments/peft_methods/sweep_cpu_seeds.py
"""

from pathlib import Path

from launch.sweep import load_file

_paper = load_file(Path(__file__).with_name("sweep.py"), "_peft_methods_sweep")


def get_sweep():
  return _paper.sweep(100, (1, 2), "runs/peft_methods_cpu_seeds")
