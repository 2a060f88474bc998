"""hyperformer, unseen task, CPU-sized baseline: SmolLM2-135M-Instruct in context from k=16 convention_party
examples (one demonstration draw, seed 0: the 16 examples the k=16 adapter trains on), every test query (306), as
the other rows of the unseen table (sweep_unseen_icl.py adds 3 draws).

  python -m launch.launchers experiments/hyperformer/sweep_unseen_cpu_icl.py
"""

from pathlib import Path

from launch.sweep import load_file

_unseen = load_file(Path(__file__).with_name("sweep_unseen.py"), "_hyperformer_sweep_unseen")


def get_sweep():
  return _unseen.icl_sweep(1, 0, "runs/hyperformer_unseen_cpu/icl_all")
