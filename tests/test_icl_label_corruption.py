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
