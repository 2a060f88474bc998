"""hyperformer, CPU-sized: seeds 1 and 2 of every method of sweep_cpu.py (everything else as sweep_cpu.py), so that
the gaps between methods are read against the seed-to-seed spread. Aggregated with sweep_cpu.py's seed-0 runs:

  python -m launch.launchers experiments/hyperformer/sweep_cpu_seeds.py
  python -m launch.aggregate runs/hyperformer_cpu runs/hyperformer_cpu_seeds --group-by=peft.method \\
      --out=experiments/hyperformer/results/cpu
"""

from pathlib import Path

from launch.sweep import load_file

_paper = load_file(Path(__file__).with_name("sweep.py"), "_hyperformer_sweep")

METHODS = ("full", "task_adapters", "adapter", "moe_lora", "hyper_lora", "hyper_adapter")  # the first two ran first


def get_sweep():
  return _paper.sweep(100, (1, 2), "runs/hyperformer_cpu_seeds", 0, METHODS)
