"""meta_learning, CPU-sized: no meta-training against MetaICL (40 steps of 8 k-shot sequences, Adam 2e-4,
LoRA r=8 on q, v of SmolLM2-135M) on convention_party + debate_party; k=4 accuracy on 256 rotten_tomatoes
queries (validation at the end of the run, then test), demonstrations from its train split; one seed.
Reptile / first-order MAML points are in sweep.py only (see the README).

  python -m launch.launchers experiments/meta_learning/sweep_cpu.py
"""

from pathlib import Path

from launch.sweep import load_file

_paper = load_file(Path(__file__).with_name("sweep.py"), "_meta_learning_sweep")


def get_sweep():
  return _paper.sweep("k=4,queries=256,batch=8", ("algorithm=metaicl,steps=0", "algorithm=metaicl,steps=40"), (0,),
                      "runs/meta_learning_cpu")
