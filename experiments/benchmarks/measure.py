"""Runs one Case on both sides in this process and returns its result dict (timings, memory, FLOPs)."""

from __future__ import annotations

import gzip
import os
import tempfile

import jax
import numpy as np
import torch

from experiments.benchmarks import analytic, hf_side, jax_side
from experiments.benchmarks.cases import Case
from experiments.benchmarks.timing import summarize, time_alternating
from lightft_jax.models.config import TransformerConfig

BF16_PEAK_FLOPS = {"H100": 989e12, "H200": 989e12, "A100": 312e12}  # dense bf16, SXM datasheets


def device_info() -> dict:
  dev = jax.devices()[0]
  kind = dev.device_kind
  peak = next((v for k, v in BF16_PEAK_FLOPS.items() if k in kind), None)
  return {"platform": dev.platform, "device_kind": kind, "bf16_peak_flops": peak,
          "torch_device": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"}


def _data(case: Case, vocab: int, seed: int = 0) -> dict[str, np.ndarray]:
  rng = np.random.default_rng(seed)
  ids = rng.integers(3, vocab, (case.batch, case.seq), dtype=np.int32)
  batch = {"input_ids": ids, "attention_mask": np.ones_like(ids)}
  if case.task == "classification":
    batch["labels"] = rng.integers(0, case.num_labels, (case.batch,), dtype=np.int32)
  if case.num_tasks > 1:
    batch["task_ids"] = (np.arange(case.batch) % case.num_tasks).astype(np.int32)
  return batch


def _our_model_from(hf_model, cfg, case: Case):
  """Our model with the transformers model's weights (saved as safetensors, read by from_pretrained)."""
  with tempfile.TemporaryDirectory() as tmp:
    hf_model.save_pretrained(tmp, safe_serialization=True)
    return jax_side.build_model(cfg, case, tmp)


def prepare(case: Case, train_step: str = "project") -> tuple[dict, dict, int, int, TransformerConfig]:
  """Builds both sides of `case` on the same weights: ({"ours": fn, "theirs": fn}, partial result dict,
  tokens and examples of work per call, our model config)."""
  info = device_info()
  gpu = info["platform"] == "gpu"
  tdev = "cuda" if gpu else "cpu"
  cfg = jax_side.model_config(case, bf16=gpu)
  res: dict = {"case": case.name, "title": case.title, "kind": case.kind, "preset": case.preset,
               "batch": case.batch, "seq": case.seq, "method": case.method,
               "dtype": "bf16 compute, fp32 params" if gpu else "float32",
               "layers": cfg.n_layers}
  hf_side.reset_peak(tdev)
  theirs_model = hf_side.hf_model(cfg, case, tdev)
  model = _our_model_from(theirs_model, cfg, case)
  res["weights"] = "shared (transformers -> safetensors -> ours)"
  fns = {}
  if case.kind == "train":
    batch = _data(case, cfg.vocab_size)
    jax_side.attach_peft(model, case)
    fns["ours"], first, jinfo = jax_side.train_step(model, case, batch, train_step)
    res["train_step"] = train_step
    res["ours_first_step_s"] = first
    if os.environ.get("BENCH_HLO_DIR"):  # compiled HLO of our step, for profiling
      with gzip.open(os.path.join(os.environ["BENCH_HLO_DIR"], f"{case.name}.hlo.txt.gz"), "wt") as f:
        f.write(jinfo["hlo"]())
    res["xla_memory"] = jinfo.get("xla_memory")
    res["ours_first_loss"] = jinfo["first_loss"]
    res["trainable_params"], res["total_params"] = jinfo["trainable_params"], jinfo["total_params"]
    fns["theirs"], res["theirs_trainable_params"], res["theirs_first_loss"] = hf_side.train_step(
        theirs_model, cfg, case, batch, tdev, gpu)
    work_tokens, work_examples = case.batch * case.seq, case.batch
  elif case.kind == "generate":
    prompts = _data(case, cfg.vocab_size)["input_ids"]
    fns["ours"], res["ours_first_step_s"] = jax_side.generate_fn(model, case, prompts)
    fns["theirs"] = hf_side.generate_fn(theirs_model, cfg, case, prompts, tdev, gpu)
    work_tokens, work_examples = case.batch * case.new_tokens, case.batch
  else:
    rng = np.random.default_rng(1)
    n_items = case.batch * 4
    tc = case.seq - case.choice_len
    contexts = rng.integers(3, cfg.vocab_size, (n_items, tc), dtype=np.int32)
    choices = rng.integers(3, cfg.vocab_size, (n_items, case.choices, case.choice_len), dtype=np.int32)
    fns["ours"], res["ours_first_step_s"] = jax_side.score_fn(model, case, contexts, choices)
    fns["theirs"] = hf_side.score_fn(theirs_model, cfg, case, contexts, choices, tdev, gpu)
    work_tokens, work_examples = n_items * case.choices * case.seq, n_items
    res["items"] = n_items
  return fns, res, work_tokens, work_examples, cfg


def run_case(case: Case, *, repeats: int, warmup: int, inner: int, train_step: str = "project") -> dict:
  info = device_info()
  gpu = info["platform"] == "gpu"
  fns, res, work_tokens, work_examples, cfg = prepare(case, train_step)
  samples = time_alternating(fns, repeats=repeats, warmup=warmup, inner=inner)
  res["ours_peak_bytes"], res["ours_peak_source"] = jax_side.peak_memory(), "allocator peak_bytes_in_use"
  xla = res.get("xla_memory")
  if res["ours_peak_bytes"] is None and xla:  # CPU: no allocator statistics; XLA's plan of the step
    res["ours_peak_bytes"] = (xla["argument_size_in_bytes"] + xla["output_size_in_bytes"]
                              - xla["alias_size_in_bytes"] + xla["temp_size_in_bytes"])
    res["ours_peak_source"] = "XLA compiled memory analysis (arguments + outputs - aliased + temp)"
  res["theirs_peak_bytes"] = hf_side.peak_memory("cuda" if gpu else "cpu")
  for side, s in samples.items():
    st = summarize(s)
    st["tokens_per_s"] = work_tokens / st["median_s"]
    st["examples_per_s"] = work_examples / st["median_s"]
    res[side] = st
  res["speedup"] = res["theirs"]["median_s"] / res["ours"]["median_s"]
  if case.kind == "train":
    fl = analytic.train_flops(cfg, case)
    res["flops_per_step"] = fl
    if info["bf16_peak_flops"] and gpu:
      for side in samples:
        res[side]["mfu"] = fl["required"] / res[side]["median_s"] / info["bf16_peak_flops"]
        res[side]["mfu_6n"] = fl["six_n"] / res[side]["median_s"] / info["bf16_peak_flops"]
    floor = analytic.memory_floor(cfg, case, res["total_params"], res["trainable_params"])
    res["memory_floor"] = floor
    if res["ours_peak_bytes"]:
      res["ours_over_floor"] = res["ours_peak_bytes"] / floor["total"]
    if res["theirs_peak_bytes"]:
      res["theirs_over_floor"] = res["theirs_peak_bytes"] / floor["total"]
  return res
