#!/usr/bin/env bash
# In-context linear regression (dense and 2-sparse, d=5, 21 points) and the LSA-vs-GD comparison.
# Usage: bash experiments/icl_regression/run.sh [OUT]   (default: experiments/icl_regression/results)
set -euo pipefail
OUT=${1:-experiments/icl_regression/results}
ARGS="n_dims=5,n_points=21,steps=4000,width=128,layers=4,heads=4,batch_size=64"
${PYTHON:-python} -m lightft_jax.main --config="configs/icl_regression.py:${ARGS}" --workdir="$OUT/linear"
${PYTHON:-python} -m lightft_jax.main --config="configs/icl_regression.py:function=sparse_linear_regression,sparsity=2,${ARGS}" \
  --workdir="$OUT/sparse_linear"
${PYTHON:-python} -m experiments.icl_regression.lsa_vs_gd --out="$OUT/lsa_vs_gd.json"
