"""PEFT library: every method attaches by rules over module paths; what trains is a type filter."""

from lightft_jax.peft.core import (PeftParam, TunedParam, apply, find_targets, make_trainable, methods,
                                   param_counts, register, replace_module, summary, trainable_filter)

__all__ = ["PeftParam", "TunedParam", "apply", "find_targets", "make_trainable", "methods", "param_counts",
           "register", "replace_module", "summary", "trainable_filter"]
