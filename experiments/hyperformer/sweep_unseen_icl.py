"""hyperformer, unseen task, paper-sized baseline: SmolLM2-135M-Instruct in context from k=16 convention_party
examples, 3 demonstration draws, every test query (sweep_unseen.icl_sweep).

  python -m launch.launchers experiments/hyperformer/sweep_unseen_icl.py --target=slurm --gpus-per-node=1 ...
"""

from pathlib import Path

from launch.sweep import load_file

_unseen = load_file(Path(__file__).with_name("sweep_unseen.py"), "_hyperformer_sweep_unseen")


def get_sweep():
  return _unseen.icl_sweep(_unseen.SEEDS, 0, "runs/hyperformer_unseen/icl")
