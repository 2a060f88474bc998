"""hyperformer, CPU-sized: the six methods of sweep.py (hyper_adapter, hyper_lora, per-task adapters, one shared
adapter, MoE-LoRA, full fine-tuning) on the default mixture at 100 steps (warm-up 10), seed 0,
no periodic validation (the last step is validated on 256 examples per task and tested). The two halves of the
methods are also their own sweeps (PART=1 / PART=2 below: sweep_cpu_part1.py, sweep_cpu_part2.py) so that they
can run side by side; all three share runs/hyperformer_cpu and skip finished points.

  python -m launch.launchers experiments/hyperformer/sweep_cpu.py
  python -m launch.aggregate runs/hyperformer_cpu --group-by=peft.method --out=experiments/hyperformer/results/cpu
"""

from pathlib import Path

from launch.sweep import load_file

_paper = load_file(Path(__file__).with_name("sweep.py"), "_hyperformer_sweep")

STEPS, WORKDIR = 100, "runs/hyperformer_cpu"
PARTS = (("hyper_adapter", "task_adapters", "hyper_lora"), ("adapter", "moe_lora", "full"))


def get_sweep(part: int = 0):
  methods = PARTS[part - 1] if part else PARTS[0] + PARTS[1]
  return _paper.sweep(STEPS, (0,), WORKDIR, 0, methods)
