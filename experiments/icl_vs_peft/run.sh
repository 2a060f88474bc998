#!/usr/bin/env bash
# icl_vs_peft, CPU-sized: k-shot ICL (k = 0, 4, 16, 32; draws 0-4; calibrated and not) against LoRA and IA3
# fine-tuned for 20 steps on the k examples of draws 0-4, SmolLM2-135M, the first 200 Rotten Tomatoes test
# examples: first at a learning rate fixed beforehand, then the check on validation and every k again at the
# rate it chose; the table, FLOPs and plot in results/cpu/.
# Usage: bash experiments/icl_vs_peft/run.sh   (finished fine-tuning points are skipped, so it can run in parts)
set -euo pipefail
PY=${PYTHON:-python}
$PY -m launch.launchers experiments/icl_vs_peft/sweep_icl_cpu.py    # ICL: one run, every k and draw
$PY -m launch.launchers experiments/icl_vs_peft/sweep_cpu.py        # LoRA / IA3 on the k examples of draw 0, lr fixed
$PY -m launch.launchers experiments/icl_vs_peft/sweep_tune_cpu.py   # the other learning rates, validation only
$PY -m launch.aggregate 'runs/icl_vs_peft_cpu/method=*k=16*' 'runs/icl_vs_peft_tune_cpu/method=*' \
  --group-by=peft.method,optimizer.lr --metric=eval/accuracy --out=experiments/icl_vs_peft/results/cpu/tune --copy-runs
$PY -m launch.launchers experiments/icl_vs_peft/sweep_cpu_selected.py  # every k at the rate validation chose
$PY -m launch.aggregate 'runs/icl_vs_peft_cpu_selected/method=*' --group-by=peft.method,task.options.train_k,optimizer.lr \
  --out=experiments/icl_vs_peft/results/cpu/peft --copy-runs
$PY -m launch.aggregate 'runs/icl_vs_peft_cpu/method=*' --group-by=peft.method,task.options.train_k,optimizer.lr \
  --out=experiments/icl_vs_peft/results/cpu/peft_fixed_lr --copy-runs
$PY -m experiments.icl_vs_peft.table --icl=runs/icl_vs_peft_cpu_icl/base --write
