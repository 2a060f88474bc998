"""Demonstration label corruption (Min et al. 2022): corrupt_P shows an incorrect label on P% of the demonstrations."""

import numpy as np
import pytest

from lightft_jax.icl.prompts import corruption_percent, demonstration_labels


@pytest.mark.parametrize("percent,n_wrong", [(0, 0), (25, 1), (50, 2), (75, 3), (100, 4)])
def test_corrupt_p_makes_exactly_that_share_wrong(percent, n_wrong):
  gold = [0, 1, 1, 0]
  for seed in range(5):
    shown = demonstration_labels(gold, f"corrupt_{percent}", 2, np.random.default_rng(seed))
    assert sum(a != b for a, b in zip(shown, gold)) == n_wrong


def test_corrupt_wrong_labels_are_other_labels_uniformly():
  rng = np.random.default_rng(0)
  gold = [2] * 400
  shown = demonstration_labels(gold, "corrupt_100", 4, rng)
  assert 2 not in shown and set(shown) == {0, 1, 3}
  assert min(np.bincount(shown, minlength=4)[[0, 1, 3]]) > 100  # about 133 each
  assert demonstration_labels([0, 1], "corrupt_0", 2, np.random.default_rng(1)) == [0, 1]


def test_corrupt_percent_parsing_and_errors():
  assert corruption_percent("corrupt_75") == 75 and corruption_percent("gold") is None
  for bad in ("corrupt_", "corrupt_101", "corrupt_x", "corrupt_-5"):
    with pytest.raises(ValueError, match="corrupt_P"):
      demonstration_labels([0, 1], bad, 2, np.random.default_rng(0))
  with pytest.raises(ValueError, match="two labels"):
    demonstration_labels([0], "corrupt_100", 1, np.random.default_rng(0))


def test_corrupt_leaves_the_generator_where_it_was():
  """So gold and corrupt_P runs select the same demonstrations for every later query."""
  a, b = np.random.default_rng(3), np.random.default_rng(3)
  first = demonstration_labels([0, 1, 0, 1], "corrupt_50", 2, a)
  assert a.integers(0, 1000, size=5).tolist() == b.integers(0, 1000, size=5).tolist()
  assert demonstration_labels([0, 1, 0, 1], "corrupt_50", 2, np.random.default_rng(3)) == first  # deterministic
  positions = {tuple(demonstration_labels([0] * 4, "corrupt_25", 2, np.random.default_rng(s))) for s in range(20)}
  assert len(positions) == 4  # the wrong position varies with the generator's state


def test_icl_table_rows_carry_the_sample_std_over_seeds(tmp_path):
  """experiments.ablations.icl_table: one row per (percent, k), mean over seeds with the sample std (ddof=1, as
  launch.aggregate's training rows), none for a single seed; unfinished runs are refused."""
  import json

  import numpy as np
  import pytest

  from experiments.ablations import icl_table
  accs = {"corrupt_0": [0.6, 0.7, 0.65], "corrupt_100": [0.55]}
  for mode, values in accs.items():
    run = tmp_path / "runs" / f"labels={mode}"
    run.mkdir(parents=True)
    (run / "config.json").write_text(json.dumps({"icl": {"label_mode": mode, "per_query_demos": True}}))
    per_seed = [{"seed": s, "acc": a, "pred_frac_1": 0.5} for s, a in enumerate(values)]
    (run / "results.json").write_text(json.dumps({
        "per_k": {"4": {"acc": float(np.mean(values)), "acc_std": float(np.std(values)), "pred_frac_1": 0.5}},
        "per_seed": {"4": per_seed}, "seeds": list(range(len(values))), "num_queries": 10, "model": "m"}))
  assert icl_table.main([str(tmp_path / "runs"), f"--out={tmp_path / 'out'}"]) == 0
  rows = json.loads((tmp_path / "out" / "summary.json").read_text())["rows"]
  assert [(r["incorrect_percent"], r["n_seeds"]) for r in rows] == [(0, 3), (100, 1)]
  assert rows[0]["acc_std"] == pytest.approx(np.std(accs["corrupt_0"], ddof=1)) and rows[1]["acc_std"] is None
  assert rows[0]["acc_per_seed"] == accs["corrupt_0"]
  assert "| 0% | 4 | 0.650 ± 0.050 |" in (tmp_path / "out" / "summary.md").read_text()
  (tmp_path / "runs" / "labels=corrupt_50").mkdir()
  (tmp_path / "runs" / "labels=corrupt_50" / "config.json").write_text("{}")
  with pytest.raises(SystemExit, match="not finished"):
    icl_table.main([str(tmp_path / "runs"), f"--out={tmp_path / 'out'}"])
