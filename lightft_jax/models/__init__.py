"""Flax NNX Transformer family, heads, generation and Hugging Face checkpoint import/export.

  config.py       TransformerConfig (one config for every architecture) and PRESETS
  layers.py, transformer.py, heads.py, generate.py   the model, read top to bottom
  ops.py          backend-specific numerics behind the layers (the custom-VJP matmul every Dense uses)
  extensions.py   the declared interface PEFT methods implement, so a new method needs no model edit:
                  `Attention.extra_kv` (an ExtraKV: extra key/value slots every query attends, e.g. prefix
                  tuning), `Transformer.input_transform` (an InputTransform: maps the embedded input before
                  the first stack and states the `added_length` it puts before it, e.g. prompt tuning), and
                  `AuxLoss` (the variable type of sown auxiliary losses the train step adds). Everything else
                  a method changes it reaches by wrapping modules by path; every call carries `ctx`.
  sentence.py     SentenceEncoder: mean-pooled frozen-encoder embeddings (ICL retrieval, hypernetwork contexts)
  archs/          one module per HF architecture (bert, roberta, gpt2, llama, mistral, t5): its presets,
                  config.json <-> TransformerConfig mapping, weight-name rules and HF class per task;
                  `archs.get_arch(model_type)` is the registry that hf.py and peft/hf_io.py read
  hf.py           from_pretrained / save_pretrained: the architecture-independent checkpoint machinery
  gguf.py         llama.cpp GGUF files (llama) -> HF-named tensors and config; tokenizer.py
"""

from lightft_jax.models import archs
from lightft_jax.models.config import PRESETS, TransformerConfig, get_preset
from lightft_jax.models.hf import from_pretrained, load_tokenizer, save_pretrained
from lightft_jax.models.generate import generate
from lightft_jax.models.transformer import Transformer

__all__ = ["PRESETS", "TransformerConfig", "Transformer", "archs", "from_pretrained", "generate", "get_preset",
           "load_tokenizer", "save_pretrained"]
