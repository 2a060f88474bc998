#!/usr/bin/env bash
# lm_finetune, CPU-sized: LoRA vs full fine-tuning of SmolLM2-135M on the Rotten Tomatoes snippets as text,
# 20 steps of batch 8 x 64 tokens, seeds 0-2; perplexity before / after in results/cpu/.
# Usage: bash experiments/lm_finetune/run.sh   (finished points are skipped, so it can run in parts)
set -euo pipefail
PY=${PYTHON:-python}
$PY -m launch.launchers experiments/lm_finetune/sweep_cpu.py
$PY -m launch.aggregate 'runs/lm_finetune_cpu/method=*' --group-by=peft.method --out=experiments/lm_finetune/results/cpu \
  --copy-runs  # each run's record (samples.txt included) in results/cpu/runs/<run>/
$PY -m experiments.lm_finetune.table --write
