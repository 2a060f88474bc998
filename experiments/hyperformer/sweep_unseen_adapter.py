"""hyperformer, unseen task, paper-sized baseline: an adapter trained on the same k=16 convention_party examples,
3 seeds (sweep_unseen.adapter_sweep).

  python -m launch.launchers experiments/hyperformer/sweep_unseen_adapter.py --target=slurm --gpus-per-node=1 ...
"""

from pathlib import Path

from launch.sweep import load_file

_unseen = load_file(Path(__file__).with_name("sweep_unseen.py"), "_hyperformer_sweep_unseen")


def get_sweep():
  return _unseen.adapter_sweep(200, _unseen.SEEDS, "runs/hyperformer_unseen/adapter_k16")
