"""peft_methods at the PyTorch reference's budget: seeds 1 and 2 of the three methods of sweep_cpu_reference.py
(everything else as there), so that the comparison with the reference is read over 3 seeds. Aggregated with
sweep_cpu_reference.py's seed-0 runs by the command in run.sh:

  python -m launch.launchers experiments/peft_methods/sweep_cpu_reference_seeds.py
"""

from pathlib import Path

from launch.sweep import load_file

_seed0 = load_file(Path(__file__).with_name("sweep_cpu_reference.py"), "_peft_methods_reference")


def get_sweep():
  sweep = _seed0.get_sweep()
  return {**sweep, "grid": {"seed": [1, 2]}, "workdir": "runs/peft_methods_cpu_600_seeds"}
