#!/usr/bin/env bash
# hyperformer, unseen task, CPU-sized: the context-conditioned methods (sweep_unseen_cpu.py), the adapter trained on
# the same k=16 examples (sweep_unseen_cpu_adapter.py) and ICL with SmolLM2-135M (sweep_unseen_cpu_icl.py), one point
# after another through launch (finished points are skipped); then the summary and the README's unseen table.
# Usage: bash experiments/hyperformer/run_unseen.sh
set -euo pipefail
PY=${PYTHON:-python}
for s in sweep_unseen_cpu sweep_unseen_cpu_adapter sweep_unseen_cpu_icl; do
  $PY -m launch.launchers experiments/hyperformer/$s.py
done
$PY -m launch.aggregate runs/hyperformer_unseen_cpu/hyper runs/hyperformer_unseen_cpu/adapter_k16 \
  runs/hyperformer_unseen_cpu/icl_all --group-by=job,task.name,peft.method \
  --out=experiments/hyperformer/results/cpu_unseen --copy-runs
$PY -m experiments.hyperformer.table --write
