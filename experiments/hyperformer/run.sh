#!/usr/bin/env bash
# hyperformer, CPU-sized (experiments/hyperformer/sweep_cpu.py): one multi-task run per method on the default
# mixture of configs/multitask.py, 100 steps, seed 0; seeds 1 and 2 of every method
# (sweep_cpu_seeds.py); then the summary, table and plots in results/cpu/.
# Usage: bash experiments/hyperformer/run.sh   (finished points are skipped, so it can run in parts; the two
# halves sweep_cpu_part1.py / sweep_cpu_part2.py are the same points as sweep_cpu.py)
# The unseen-task setting is run_unseen.sh.
set -euo pipefail
PY=${PYTHON:-python}
$PY -m launch.launchers experiments/hyperformer/sweep_cpu.py
$PY -m launch.launchers experiments/hyperformer/sweep_cpu_seeds.py
$PY -m launch.aggregate runs/hyperformer_cpu runs/hyperformer_cpu_seeds --group-by=peft.method \
  --out=experiments/hyperformer/results/cpu
$PY -m experiments.hyperformer.table --write
for d in runs/hyperformer_cpu/method=* runs/hyperformer_cpu_seeds/seed=*; do  # each run's files beside the summary
  out="experiments/hyperformer/results/cpu/runs/$(basename "$(dirname "$d")")/$(basename "$d")"
  mkdir -p "$out"
  cp "$d"/config.json "$d"/results.json "$d"/metrics.jsonl "$out/"
done
