"""In-context learning: few-shot prompting and scoring, calibration, regression in context, meta-learning.

`run_icl_eval` is the `icl_eval` job (lightft_jax.jobs); in-context regression and meta-learning train
through the one trainer (`train.objective` icl_regression / metaicl / reptile / fomaml).
"""

from lightft_jax.icl.run_eval import run_icl_eval

__all__ = ["run_icl_eval"]
