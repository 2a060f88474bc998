"""Meta-learning: MetaICL k-shot training, first-order MAML / Reptile over a parameter subset."""

import numpy as np
import pytest
from flax import nnx

from lightft_jax.icl.meta import (TokenMappingTask, evaluate_adaptation, evaluate_icl, kshot_sequence,
                                  meta_train_first_order, meta_train_icl)
from lightft_jax.models import Transformer, get_preset

CFG = get_preset("tiny-gpt2", vocab_size=32, d_model=32, n_layers=1, n_heads=2, d_ff=64, max_positions=64)
TRAIN = [TokenMappingTask(s) for s in range(20)]
HELD_OUT = [TokenMappingTask(s) for s in range(1000, 1002)]
DECODER = nnx.All(nnx.Param, nnx.PathContains("decoder"))


def test_tasks_and_kshot_format():
  rng = np.random.default_rng(0)
  task = TokenMappingTask(3, num_labels=3)
  rows = task.sample(rng, 50)
  assert all(y in task.label_ids and len(x) == 2 and min(x) >= 10 for x, y in rows)
  by_first = {}
  for x, y in rows:  # a task is a function of the first input token
    assert by_first.setdefault(x[0], y) == y
  ids, y = kshot_sequence([([10, 11], 4), ([12, 13], 5)], ([14, 15], 4), sep=3)
  assert ids == [10, 11, 4, 3, 12, 13, 5, 3, 14, 15] and y == 4


def test_meta_icl_training_lowers_the_answer_loss():
  model = Transformer(CFG, task="lm", rngs=nnx.Rngs(0))
  losses = meta_train_icl(model, TRAIN, k=4, steps=25, batch_size=8, lr=3e-3)
  assert np.mean(losses[-5:]) < 0.5 * losses[0]
  acc = evaluate_icl(model, HELD_OUT, k=4, queries_per_task=8)
  assert 0.0 <= acc <= 1.0


@pytest.mark.parametrize("algorithm", ["reptile", "fomaml"])
def test_first_order_meta_learning_updates_only_the_filter(algorithm):
  model = Transformer(CFG, task="lm", rngs=nnx.Rngs(0))
  frozen = np.asarray(model.embed.tokens.embedding[...]).copy()
  trained = np.asarray(model.decoder.layers[0].mlp.up.kernel[...]).copy()
  history = meta_train_first_order(model, TRAIN, algorithm=algorithm, steps=2, tasks_per_step=2, support=4,
                                   query=4, inner_steps=2, wrt=DECODER)
  assert len(history) == 2 and all(np.isfinite(history))
  np.testing.assert_array_equal(np.asarray(model.embed.tokens.embedding[...]), frozen)
  assert np.abs(np.asarray(model.decoder.layers[0].mlp.up.kernel[...]) - trained).max() > 0
  if algorithm == "reptile":
    out = evaluate_adaptation(model, HELD_OUT, support=4, query=8, inner_steps=2, wrt=DECODER)
    assert 0.0 <= out["acc_before"] <= 1.0 and 0.0 <= out["acc_after"] <= 1.0


def test_unknown_algorithm_is_a_clear_error():
  model = Transformer(CFG, task="lm", rngs=nnx.Rngs(0))
  with pytest.raises(ValueError, match=r"choose from \('reptile', 'fomaml'\)"):
    meta_train_first_order(model, TRAIN, algorithm="maml2", wrt=DECODER)
