"""PEFT library: every method attaches by rules over module paths; what trains is a type filter."""

from lightft_jax.peft.core import (PeftParam, TunedParam, apply, find_targets, make_trainable, methods,
                                   param_counts, register, replace_module, summary, trainable_filter)
from lightft_jax.peft import hyper, moe  # noqa: F401  (registers hyper*, moe_lora, task_gated_adapter)
from lightft_jax.peft.hyper import ContextEncoder

__all__ = ["ContextEncoder", "PeftParam", "TunedParam", "apply", "find_targets", "make_trainable", "methods",
           "param_counts", "register", "replace_module", "summary", "trainable_filter"]
