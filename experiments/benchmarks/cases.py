"""Benchmark cases: one frozen description per row of the results table, for the CPU and GPU suites.

A case names the model preset, the batch shape, what runs (a training step, greedy generation or choice
scoring) and the PEFT method. Both sides (lightft_jax and transformers + peft) build from the same case.
"""

from __future__ import annotations

import dataclasses
from typing import Any


@dataclasses.dataclass(frozen=True)
class Case:
  name: str
  title: str
  kind: str  # "train" | "generate" | "score"
  preset: str  # lightft_jax.models.config preset whose shapes both sides use
  batch: int
  seq: int  # training / scoring: sequence length; generation: prompt length
  method: dict[str, Any] | None = None  # PEFT config; None = full fine-tuning
  task: str = "lm"  # "lm" | "classification"
  num_labels: int = 2
  new_tokens: int = 0  # generation
  choices: int = 4  # scoring: answer choices per item
  choice_len: int = 8  # scoring: tokens per answer
  num_tasks: int = 1  # hypernetwork: tasks mixed in one batch
  layers: int | None = None  # override the preset's depth (keeps CPU runs short); None = preset

  @property
  def overrides(self) -> dict[str, Any]:
    return {} if self.layers is None else {"n_layers": self.layers}


LORA_QV = {"method": "lora", "r": 8, "alpha": 16, "targets": "qv"}
PREFIX = {"method": "prefix", "num_tokens": 16}
HYPER = {"method": "hyper_lora", "r": 8, "alpha": 16, "lora_targets": "qv", "n_tasks": 4}


def _suite(b_dec: int, t_dec: int, b_enc: int, t_enc: int, *, gen: tuple[int, int, int], score: tuple[int, int],
           dec: str = "gpt2", enc: str = "bert-base") -> list[Case]:
  gb, gp, gn = gen
  sb, st = score
  return [
      Case("a_lora_gpt2", f"(a) LoRA r=8 q,v - {dec}", "train", dec, b_dec, t_dec, LORA_QV),
      Case("b_full_gpt2", f"(b) full fine-tuning - {dec}", "train", dec, b_dec, t_dec, None),
      # HF GPT-2 gives the prefix its own position slots: prefix + sequence must fit max_positions.
      Case("c_prefix_gpt2", f"(c) prefix tuning 16 tokens - {dec}", "train", dec, b_dec, t_dec - PREFIX["num_tokens"],
           PREFIX),
      Case("d_lora_bert", f"(d) LoRA r=8 q,v - {enc} classifier", "train", enc, b_enc, t_enc, LORA_QV,
           task="classification"),
      Case("e_hyper_gpt2", f"(e) hyper-LoRA, {HYPER['n_tasks']} tasks mixed in a batch - {dec}", "train", dec,
           b_dec, t_dec, HYPER, num_tasks=HYPER["n_tasks"]),
      Case("f_generate_gpt2", f"(f) greedy generation, KV cache, {gn} new tokens - {dec}", "generate",
           dec, gb, gp, new_tokens=gn),
      Case("g_score_gpt2", f"(g) multiple-choice log-likelihood scoring - {dec}", "score", dec, sb, st),
  ]


SUITES: dict[str, list[Case]] = {
    "cpu": _suite(4, 128, 4, 128, gen=(4, 32, 32), score=(8, 96)),
    "gpu": _suite(16, 1024, 32, 512, gen=(16, 128, 128), score=(64, 480)) + [
        Case("h_lora_llama1b", "(h) LoRA r=8 q,v - Llama-1B, seq 2048", "train", "llama-1b", 4, 2048, LORA_QV),
    ],
    # Tiny shapes for the smoke test and quick checks of the harness itself.
    "smoke": _suite(4, 16, 4, 16, gen=(2, 8, 8), score=(2, 24), dec="tiny-gpt2", enc="tiny-bert"),
}


def get_case(suite: str, name: str) -> Case:
  case = next((c for c in get_suite(suite) if c.name == name), None)
  if case is None:
    raise ValueError(f"unknown case {name!r}; suite {suite!r} has {[c.name for c in get_suite(suite)]}")
  return case


def get_suite(name: str) -> list[Case]:
  if name not in SUITES:
    raise ValueError(f"unknown suite {name!r}; choose from {sorted(SUITES)}")
  return SUITES[name]
