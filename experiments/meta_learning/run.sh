#!/usr/bin/env bash
# meta_learning, CPU-sized: no meta-training vs MetaICL on SmolLM2-135M + LoRA, held-out rotten_tomatoes.
# Usage: bash experiments/meta_learning/run.sh   (finished points are skipped, so it can run in parts)
set -euo pipefail
PY=${PYTHON:-python}
$PY -m launch.launchers experiments/meta_learning/sweep_cpu.py
$PY -m launch.aggregate 'runs/meta_learning_cpu/*' --group-by=total_steps --metric=test/icl_accuracy \
  --out=experiments/meta_learning/results/cpu
