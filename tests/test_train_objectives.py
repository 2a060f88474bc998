"""What the train step optimises: aligned LM labels, packed sequences kept apart (sown auxiliary losses:
tests/test_train_step_guards.py)."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from lightft_jax.models import Transformer, get_preset
from lightft_jax.train import losses

CFG = get_preset("tiny-gpt2", d_model=32, n_heads=2, d_ff=64, vocab_size=64, max_positions=32, n_layers=1)


def test_lm_loss_uses_labels_as_aligned_targets():
  logits = jax.random.normal(jax.random.key(0), (2, 5, 64))
  labels = jnp.array([[3, 4, -100, 5, 6], [-100, -100, 1, 2, 3]])
  loss, aux = losses.loss_and_predictions("lm", {"logits": logits}, {"labels": labels})
  valid = labels != -100
  ce = optax.softmax_cross_entropy_with_integer_labels(logits, jnp.maximum(labels, 0))
  np.testing.assert_allclose(loss, jnp.sum(ce * valid) / valid.sum(), rtol=1e-6)
  assert float(aux["weight"]) == 7.0


def test_packed_documents_do_not_attend_to_each_other():
  model = Transformer(CFG, task="lm", rngs=nnx.Rngs(0))
  a, b = jnp.array([[5, 6, 7, 8]]), jnp.array([[9, 10, 11]])
  packed = jnp.concatenate([a, b], 1)
  seg = jnp.array([[1, 1, 1, 1, 2, 2, 2]])
  pos = jnp.array([[0, 1, 2, 3, 0, 1, 2]])
  out = model(packed, positions=pos, segment_ids=seg)["logits"]
  np.testing.assert_allclose(out[:, :4], model(a)["logits"], atol=1e-5)
  np.testing.assert_allclose(out[:, 4:], model(b)["logits"], atol=1e-5)
  leaky = model(packed, positions=pos)["logits"]
  assert not np.allclose(leaky[:, 4:], model(b)["logits"], atol=1e-3)
