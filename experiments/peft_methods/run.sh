#!/usr/bin/env bash
# peft_methods, CPU-sized (experiments/peft_methods/sweep_cpu.py): every method on all-MiniLM-L6-v2 + Rotten
# Tomatoes, batch 32, max length 64, 100 steps, seed 0; then the table and plots in results/cpu/; then LoRA, head-only
# and full fine-tuning at the PyTorch reference's 600 steps (sweep_cpu_reference.py, results/cpu_600/).
# Usage: bash experiments/peft_methods/run.sh   (finished points are skipped, so it can run in parts)
set -euo pipefail
${PYTHON:-python} -m launch.launchers experiments/peft_methods/sweep_cpu.py
${PYTHON:-python} -m launch.aggregate runs/peft_methods_cpu \
  --group-by=peft.method,peft.config,peft.placement,peft.projection,peft.rslora,peft.dora,peft.targets \
  --out=experiments/peft_methods/results/cpu
# the three methods the PyTorch reference reports, at its 600 steps (seed 0), and their table
${PYTHON:-python} -m launch.launchers experiments/peft_methods/sweep_cpu_reference.py
${PYTHON:-python} -m launch.aggregate runs/peft_methods_cpu_600 \
  --group-by=peft.method,peft.targets,peft.rslora,peft.dora \
  --out=experiments/peft_methods/results/cpu_600
${PYTHON:-python} -m experiments.peft_methods.table --write
