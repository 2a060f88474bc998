"""hyperformer, unseen task, CPU-sized: the context-conditioned hypernetworks and MoE-LoRA of sweep_unseen.py at
100 steps (warm-up 10), seeds 0, 1 and 2, no periodic validation (the last step is validated on 256 examples per
task and tested; convention_party's held-out metrics from its k=16 context examples). The baselines are
sweep_unseen_cpu_adapter.py and sweep_unseen_cpu_icl.py; run_unseen.sh runs all three and the table.

  python -m launch.launchers experiments/hyperformer/sweep_unseen_cpu.py
"""

from pathlib import Path

from launch.sweep import load_file

_unseen = load_file(Path(__file__).with_name("sweep_unseen.py"), "_hyperformer_sweep_unseen")

WORKDIR = "runs/hyperformer_unseen_cpu"
METHODS = ("hyper_lora", "moe_lora", "hyper_adapter")  # the cheaper steps first


def get_sweep():
  return _unseen.sweep(100, _unseen.SEEDS, f"{WORKDIR}/hyper", 0, METHODS)
