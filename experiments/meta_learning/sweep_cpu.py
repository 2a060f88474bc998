"""meta_learning, CPU-sized (about half an hour on 2 CPU cores, 2-4 minutes per run): SmolLM2-135M with LoRA
(r=8 on q, v), meta-trained on convention_party + debate_party, held out: rotten_tomatoes; texts cut to 12 words,
k=2 demonstrations (from rotten_tomatoes' train split) per query, 64 validation queries at the end of the run and
64 test queries; seeds 0, 1, 2 (the seed also picks the evaluation draw).
Points: no meta-training (steps=0, evaluated as reptile so that it also reports accuracy before / after 2 SGD
steps on 4 support examples) / MetaICL (10 steps of 4 k-shot sequences, Adam 1e-3) / Reptile and first-order
MAML (4 steps of 2 tasks, each 2 inner SGD steps at 1e-2 on 4 support examples, outer SGD 1.0).

  python -m launch.launchers experiments/meta_learning/sweep_cpu.py
"""

from pathlib import Path

from launch.sweep import load_file

_paper = load_file(Path(__file__).with_name("sweep.py"), "_meta_learning_sweep")

POINTS = ("algorithm=reptile,steps=0", "algorithm=metaicl,steps=10,batch=4,lr=1e-3",
          "algorithm=reptile,steps=4,batch=2", "algorithm=fomaml,steps=4,batch=2")


def get_sweep():
  return _paper.sweep("k=2,max_words=12,queries=64,support=4,query=4,inner_steps=2", POINTS, (0, 1, 2),
                      "runs/meta_learning_cpu", {"wandb.mode": "disabled"})
