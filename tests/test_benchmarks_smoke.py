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
