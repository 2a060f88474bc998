"""hyperformer, CPU-sized: seeds 1 and 2 of the two best methods of sweep_cpu.py (per-task adapters, full
fine-tuning; everything else as sweep_cpu.py), so that their gap is read against the seed-to-seed spread. The
other four methods' seeds 1 and 2 did not fit the shared CPU's time. Aggregated with sweep_cpu.py's seed-0 runs:

  python -m launch.launchers experiments/hyperformer/sweep_cpu_seeds.py
  python -m launch.aggregate runs/hyperformer_cpu runs/hyperformer_cpu_seeds --group-by=peft.method \\
      --out=experiments/hyperformer/results/cpu
"""

from pathlib import Path

from launch.sweep import load_file

_paper = load_file(Path(__file__).with_name("sweep.py"), "_hyperformer_sweep")

METHODS = ("full", "task_adapters")


def get_sweep():
  return _paper.sweep(100, (1, 2), "runs/hyperformer_cpu_seeds", 0, METHODS)
