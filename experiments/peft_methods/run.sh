#!/usr/bin/env bash
# peft_methods, CPU-sized (experiments/peft_methods/sweep_cpu.py): every method on all-MiniLM-L6-v2 + Rotten
# Tomatoes, batch 32, max length 64, 100 steps, seed 0, then seeds 1 and 2 (sweep_cpu_seeds.py); then the table and
# plots in results/cpu/; then LoRA, head-only and full fine-tuning at the PyTorch reference's 600 steps, 3 seeds
# (sweep_cpu_reference.py + _seeds.py), and the other methods at 600 steps (sweep_cpu_600_rest.py, seed 0;
# sweep_cpu_600_rest_seeds.py, seeds 1 and 2), with reparameterised prefix tuning's learning rate chosen on
# validation (sweep_cpu_600_prefix_lr.py, then sweep_cpu_600_prefix_selected.py: 3 seeds at that rate), all in
# results/cpu_600/; full fine-tuning with the transformers Trainer's defaults on our side (sweep_cpu_hf_recipe.py,
# results/cpu_600_hf/) and with either recipe on the PyTorch side, on the same batches (reference_torch.py,
# results/torch/); each method's learning rate but head-only's on validation (sweep_cpu_600_lr.py,
# results/cpu_600_lr/; sweep_cpu_600_lr_selected.py) and LoRA through peft on the same batches.
# Usage: bash experiments/peft_methods/run.sh   (finished points are skipped, so it can run in parts)
set -euo pipefail
${PYTHON:-python} -m launch.launchers experiments/peft_methods/sweep_cpu.py
${PYTHON:-python} -m launch.launchers experiments/peft_methods/sweep_cpu_seeds.py
${PYTHON:-python} -m launch.aggregate runs/peft_methods_cpu runs/peft_methods_cpu_seeds \
  --group-by=peft.method,peft.config,peft.placement,peft.projection,peft.rslora,peft.dora,peft.targets \
  --out=experiments/peft_methods/results/cpu --copy-runs
# the PyTorch reference's 600 steps: the three methods it reports (seeds 0, 1, 2), then the other 13 (seed 0),
# reparameterised prefix tuning's learning rate on validation and 3 seeds at it, then seeds 1, 2 of the other 13
${PYTHON:-python} -m launch.launchers experiments/peft_methods/sweep_cpu_reference.py
${PYTHON:-python} -m launch.launchers experiments/peft_methods/sweep_cpu_reference_seeds.py
${PYTHON:-python} -m launch.launchers experiments/peft_methods/sweep_cpu_600_rest.py
${PYTHON:-python} -m launch.launchers experiments/peft_methods/sweep_cpu_600_prefix_lr.py
${PYTHON:-python} -m launch.aggregate runs/peft_methods_cpu_600_prefix_lr \
  "runs/peft_methods_cpu_600_rest/method=prefix_projection=True" --group-by=optimizer.lr --metric=eval/accuracy \
  --out=experiments/peft_methods/results/cpu_600_prefix_lr
${PYTHON:-python} -m launch.launchers experiments/peft_methods/sweep_cpu_600_prefix_selected.py
${PYTHON:-python} -m launch.launchers experiments/peft_methods/sweep_cpu_600_rest_seeds.py
# full fine-tuning's, LoRA's, IA3's, prompt and prefix tuning's, BitFit's, LayerNorm's, top-2 layers', rsLoRA's, the
# Houlsby adapter's and MAM's learning rates on the whole validation split (seed 0),
# then 3 seeds at each chosen rate that is not the table's (full fine-tuning: 2e-4; IA3, prompt, prefix, BitFit: 1e-2;
# top-2 layers, rsLoRA: 5e-4)
${PYTHON:-python} -m launch.launchers experiments/peft_methods/sweep_cpu_600_lr.py
${PYTHON:-python} -m launch.aggregate runs/peft_methods_cpu_600_lr \
  --group-by=peft.method,peft.config,peft.placement,peft.rslora,peft.dora,optimizer.lr \
  --metric=eval/accuracy --out=experiments/peft_methods/results/cpu_600_lr --copy-runs
${PYTHON:-python} -m launch.launchers experiments/peft_methods/sweep_cpu_600_lr_selected.py
# (where the earlier run directories are gone, put experiments/peft_methods/results/cpu_600/summary.json first among
# the inputs: its per_run entries stand for them; the README says which runs the committed summary read that way)
${PYTHON:-python} -m launch.aggregate runs/peft_methods_cpu_600 runs/peft_methods_cpu_600_seeds runs/peft_methods_cpu_600_rest \
  runs/peft_methods_cpu_600_rest_seeds runs/peft_methods_cpu_600_prefix_selected runs/peft_methods_cpu_600_lr_selected \
  --group-by=peft.method,peft.config,peft.placement,peft.projection,peft.rslora,peft.dora,peft.targets,optimizer.lr \
  --out=experiments/peft_methods/results/cpu_600
# full fine-tuning, both recipes, both sides (seed 0)
${PYTHON:-python} -m launch.launchers experiments/peft_methods/sweep_cpu_hf_recipe.py
${PYTHON:-python} -m launch.aggregate runs/peft_methods_cpu_600_hf --group-by=peft.method \
  --out=experiments/peft_methods/results/cpu_600_hf
for recipe in ours hf; do
  ${PYTHON:-python} -m experiments.peft_methods.reference_torch --method=full --recipe=$recipe --seed=0 \
    --out=experiments/peft_methods/results/torch/full_${recipe}_seed0.json
done
# LoRA r=8 q,v through peft on the same batches, quickstart settings (seed 0)
${PYTHON:-python} -m experiments.peft_methods.reference_torch --method=lora --recipe=ours --seed=0 \
  --out=experiments/peft_methods/results/torch/lora_ours_seed0.json
${PYTHON:-python} -m experiments.peft_methods.table --write
