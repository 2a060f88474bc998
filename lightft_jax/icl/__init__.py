"""In-context learning: few-shot prompting and scoring, calibration, regression in context, meta-learning."""

from lightft_jax.icl.run_eval import run_icl_eval
from lightft_jax.icl.run_regression import run_icl_regression

__all__ = ["run_icl_eval", "run_icl_regression"]
