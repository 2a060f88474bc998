"""hyperformer, unseen task, CPU-sized baseline: an adapter trained on the same k=16 convention_party examples
for 50 steps (batch 16: 50 passes over them), seeds 0, 1 and 2, each on the 16 examples its seed draws
(sweep_unseen.adapter_sweep).

  python -m launch.launchers experiments/hyperformer/sweep_unseen_cpu_adapter.py
"""

from pathlib import Path

from launch.sweep import load_file

_unseen = load_file(Path(__file__).with_name("sweep_unseen.py"), "_hyperformer_sweep_unseen")


def get_sweep():
  return _unseen.adapter_sweep(50, _unseen.SEEDS, "runs/hyperformer_unseen_cpu/adapter_k16")
