"""PEFT library: every method attaches by rules over module paths; what trains is a type filter.

A method (`core.register`) changes the model in place through what the model declares, never through a
model edit: it wraps the modules its `targets` regexes match (LoRA, adapters, IA3, hypernetwork sites, MoE),
fills a slot of `lightft_jax.models.extensions` (`Attention.extra_kv`: prefix.py and hyper prefixes;
`Transformer.input_transform`: prompt.py), sows auxiliary losses as `extensions.AuxLoss` (moe.py), or
re-types existing parameters as trainable (selective.py). P-tuning v2, LLaMA-Adapter or a new input-side
method is one new module here. hyper.py loads no checkpoint: its `ContextEncoder` takes a text encoder
function (e.g. `models.sentence.SentenceEncoder.load()`).
"""

from lightft_jax.peft.core import (PeftParam, TunedParam, UnknownOptionError, apply, check_config, check_key,
                                   find_targets, make_trainable, methods, option_keys, options, param_counts,
                                   register, replace_module, summary, trainable_filter)
from lightft_jax.peft.core import PeftParam as trainable  # the nnx filter of what PEFT trains
# lora, ia3, prefix, prompt also register their HF peft save/load (hf_io.register_hf); save_hf / load_hf list
# the supported peft types in this import order
from lightft_jax.peft import adapters, lora, ia3, prefix, prompt, selective  # noqa: F401  (register methods)
from lightft_jax.peft import hyper, moe  # noqa: F401  (registers hyper*, moe_lora, task_gated_adapter)
from lightft_jax.peft.hf_io import load_hf, save_hf
from lightft_jax.peft.lora import merge, merge_and_unload, unmerge
from lightft_jax.peft.merging import add_weighted_adapter
from lightft_jax.peft.named import adapter_names, set_active
from lightft_jax.peft.hyper import ContextEncoder

__all__ = ["ContextEncoder", "add_weighted_adapter", "adapter_names", "load_hf", "merge", "merge_and_unload", "save_hf", "set_active",
           "trainable", "unmerge", "PeftParam", "TunedParam", "UnknownOptionError", "apply", "check_config",
           "check_key", "find_targets", "make_trainable", "methods", "option_keys", "options", "param_counts",
           "register", "replace_module", "summary", "trainable_filter"]
