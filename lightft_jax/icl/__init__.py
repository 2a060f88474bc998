"""In-context learning: few-shot prompting and scoring, calibration, regression in context, meta-learning."""

from lightft_jax.icl.run_eval import run_icl_eval

__all__ = ["run_icl_eval"]
