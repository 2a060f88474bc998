#!/usr/bin/env bash
# icl_vs_peft, CPU-sized: k-shot ICL (k = 0, 4, 16, 32; draws 0-4; calibrated and not) against LoRA and IA3
# fine-tuned for 20 steps on the k examples of draws 0-4, SmolLM2-135M, the first 200 Rotten Tomatoes test
# examples. In the order it ran: ICL and fine-tuning at a learning rate and prompt fixed beforehand, the learning
# rate's check on validation and every k again at the rate it chose, the prompt's answer cue checked on validation
# for each side and every k again with the cue it chose; the table, FLOPs and plot in results/cpu/.
# Usage: bash experiments/icl_vs_peft/run.sh   (finished points are skipped, so it can run in parts)
set -euo pipefail
PY=${PYTHON:-python}
R=experiments/icl_vs_peft/results/cpu
$PY -m launch.launchers experiments/icl_vs_peft/sweep_cpu.py        # LoRA / IA3 on the k examples of draw 0, lr fixed
$PY -m launch.launchers experiments/icl_vs_peft/sweep_tune_cpu.py   # the other learning rates, validation only
$PY -m launch.aggregate 'runs/icl_vs_peft_cpu/method=*k=16*' 'runs/icl_vs_peft_tune_cpu/method=*' \
  --group-by=peft.method,optimizer.lr --metric=eval/accuracy --out=$R/tune --copy-runs
$PY -m launch.launchers experiments/icl_vs_peft/sweep_prompt_cpu.py  # ICL's answer cue on validation
for c in Answer Sentiment; do
  mkdir -p $R/prompt/$c && cp runs/icl_vs_peft_prompt_cpu/*cue=$c/{results.json,config.json,metrics.jsonl,command.txt} $R/prompt/$c/
done
$PY -m launch.launchers experiments/icl_vs_peft/sweep_prompt_tune_cpu.py  # the fine-tuning side's cue on validation
$PY -m launch.aggregate 'runs/icl_vs_peft_prompt_tune_cpu/method=*' --group-by=peft.method,task.answer_prefix \
  --metric=eval/accuracy --out=$R/prompt_tune --copy-runs
$PY -m launch.launchers experiments/icl_vs_peft/sweep_tune_cue_cpu.py  # IA3's other rate with its chosen cue
$PY -m launch.aggregate 'runs/icl_vs_peft_prompt_tune_cpu/method=ia3*cue=Sentiment' 'runs/icl_vs_peft_tune_cue_cpu/*' \
  --group-by=peft.method,optimizer.lr,task.answer_prefix --metric=eval/accuracy --out=$R/tune_cue --copy-runs
$PY -m launch.launchers experiments/icl_vs_peft/sweep_icl_cpu.py    # ICL on test: the first cue and the chosen one
$PY -m launch.launchers experiments/icl_vs_peft/sweep_cpu_selected.py  # every k at the chosen rate; first and chosen cue
$PY -m launch.aggregate 'runs/icl_vs_peft_cpu_selected/method=*' \
  --group-by=peft.method,task.options.train_k,optimizer.lr,task.answer_prefix --out=$R/peft --copy-runs
$PY -m launch.aggregate 'runs/icl_vs_peft_cpu/method=*' --group-by=peft.method,task.options.train_k,optimizer.lr \
  --out=$R/peft_fixed_lr --copy-runs
ICL=runs/icl_vs_peft_cpu_icl/method=icl_ks=0+4+16+32_seeds=5_limit=200
CUE=$($PY -c "from launch.sweep import load_file; print(load_file('experiments/icl_vs_peft/sweep_prompt_cpu.py', 'p').chosen_cue())")
if [ "$CUE" = Answer ]; then
  $PY -m experiments.icl_vs_peft.table --icl=$ICL --write
else
  $PY -m experiments.icl_vs_peft.table --icl=${ICL}_cue=$CUE --icl_prompt_fixed=$ICL --write
fi
