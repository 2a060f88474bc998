"""hyperformer, unseen task, CPU-sized baseline: SmolLM2-135M-Instruct in context from k=16 convention_party
examples (seeds 0, 1 and 2, one run each: the 16 examples the k=16 adapter of that seed trains on), every test
query (306), as the other rows of the unseen table.

  python -m launch.launchers experiments/hyperformer/sweep_unseen_cpu_icl.py
"""

from pathlib import Path

from launch.sweep import load_file

_unseen = load_file(Path(__file__).with_name("sweep_unseen.py"), "_hyperformer_sweep_unseen")


def get_sweep():
  return _unseen.icl_sweep(_unseen.SEEDS, 0, "runs/hyperformer_unseen_cpu/icl_all")
