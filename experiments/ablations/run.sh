#!/usr/bin/env bash
# ablations, CPU-sized: the sweeps sweep_cpu_{lora,adapter,prefix,layers}.py (all-MiniLM-L6-v2 + Rotten Tomatoes,
# quickstart config, batch 32, max length 64, 100 steps, seed 0), sweep_cpu_seeds.py (seeds 1 and 2 of those
# points, seeds 0-2 of the points shared with peft_methods) and sweep_icl_cpu.py (SmolLM2-135M, label corruption)
# through launch (local backend), then the summaries, tables and plots in results/cpu/.
# Usage: bash experiments/ablations/run.sh   (finished points, training and ICL, are skipped, so it can run in parts)
set -euo pipefail
PY=${PYTHON:-python}
declare -A GROUP=([lora]=peft.targets,peft.r [adapter]=peft.reduction_factor
                  [prefix]=peft.projection,peft.num_tokens,optimizer.lr [layers]=peft.top_k)
for family in layers adapter prefix lora; do
  $PY -m launch.launchers experiments/ablations/sweep_cpu_$family.py
done
$PY -m launch.launchers experiments/ablations/sweep_cpu_seeds.py
for family in layers adapter prefix lora; do
  $PY -m launch.aggregate runs/ablations_cpu/$family "runs/ablations_cpu_seeds/*method=${family}_*" \
    --group-by=${GROUP[$family]} --out=experiments/ablations/results/cpu/$family
done
$PY -m launch.launchers experiments/ablations/sweep_icl_cpu.py
$PY -m experiments.ablations.icl_table runs/ablations_cpu/icl_corruption \
  --out=experiments/ablations/results/cpu/icl_corruption
$PY -m experiments.ablations.table --write
