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
  --out=experiments/hyperformer/results/cpu --copy-runs  # each run's record in results/cpu/runs/<run>/
$PY -m experiments.hyperformer.table --write
