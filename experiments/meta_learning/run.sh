#!/usr/bin/env bash
# meta_learning, CPU-sized: no meta-training vs MetaICL vs Reptile vs first-order MAML on SmolLM2-135M + LoRA,
# meta-trained on convention_party + debate_party, held out: rotten_tomatoes; table in README.md.
# Usage: bash experiments/meta_learning/run.sh   (finished points are skipped, so it can run in parts)
set -euo pipefail
PY=${PYTHON:-python}
$PY -m launch.launchers experiments/meta_learning/sweep_cpu.py
$PY -m launch.aggregate 'runs/meta_learning_cpu/family=text_*' --group-by=train.objective,total_steps \
  --metric=test/icl_accuracy --out=experiments/meta_learning/results/cpu --copy-runs  # + results/cpu/runs/<run>/
$PY -m experiments.meta_learning.table --write
