"""The task-kind registry (`lightft_jax.kinds`): every built-in kind resolves, an unknown kind is an error
that lists the known ones, and a new kind registered in one place runs through the data pipeline, the loss
and evaluation."""

import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from lightft_jax import data, kinds
from lightft_jax.data import formats
from lightft_jax.data.tasks import Task
from lightft_jax.models import Transformer, get_preset
from lightft_jax.models.transformer import TASKS as MODEL_HEADS
from lightft_jax.train import evaluate as ev, losses, sharding as shd, steps


def test_builtin_kinds_resolve():
  assert kinds.known_kinds() == ["classification", "regression", "token_classification", "qa", "seq2seq", "lm",
                                 "verbalized", "icl_regression"]
  for name in kinds.known_kinds():
    spec = kinds.get_kind(name)
    assert spec.head in MODEL_HEADS, name
    assert callable(kinds.resolve(spec.loss)) and issubclass(kinds.resolve(spec.evaluator), ev.Evaluator)
    for family in spec.formatters:
      assert callable(spec.formatter(family))
    for ref in (spec.target, spec.metric_inputs):
      assert ref is None or callable(kinds.resolve(ref))
  assert kinds.get_kind("seq2seq").head == "lm" and kinds.get_kind("icl_regression").head == "regression"
  assert formats.formatter("regression", "encoder") is formats.encoder_regression


def test_unknown_kind_lists_the_known_ones():
  known = r"known kinds: \['classification', 'regression', .*'lm', 'verbalized', 'icl_regression'\]"
  with pytest.raises(ValueError, match=r"unknown task kind 'ranking'; " + known):
    kinds.get_kind("ranking")
  with pytest.raises(ValueError, match=known):
    losses.loss_and_predictions("ranking", {"logits": jnp.zeros((2, 3))}, {"labels": jnp.zeros((2,), jnp.int32)})
  with pytest.raises(ValueError, match=known):
    Task("t", "ranking", ("text",), None, ("accuracy",), lambda s, d: [])
  with pytest.raises(ValueError, match=known):
    formats.formatter("ranking", "encoder")
  with pytest.raises(ValueError, match="already registered"):
    kinds.register_kind(kinds.KindSpec("lm", head="lm", loss=losses.token_cross_entropy, evaluator=ev.Evaluator))
  with pytest.raises(ValueError, match="package.module:attribute"):
    kinds.resolve("no_colon_here")


# A toy kind, all of it here: ordinal scores in [0, 4] learned as regression with an absolute-error loss,
# evaluated by mean absolute error and the fraction within half a point.

def _toy_format(task, examples, tok, max_length, padding="max_length"):
  """Character ids (no tokenizer): input_ids, attention_mask [b, max_length], labels [b] float32."""
  ids = [[1 + ord(c) % 60 for c in e["text"]][:max_length] for e in examples]
  return {"input_ids": formats.pad_rows(ids, max_length, 0),
          "attention_mask": formats.pad_rows([[1] * len(r) for r in ids], max_length, 0),
          "labels": np.asarray([e["score"] for e in examples], np.float32)}


def _toy_loss(out, batch):
  pred = out["logits"][..., 0].astype(jnp.float32)
  w = batch["weights"] if "weights" in batch else jnp.ones(pred.shape[:1], jnp.float32)
  return jnp.sum(jnp.abs(pred - batch["labels"]) * w) / jnp.maximum(jnp.sum(w), 1e-9), {"predictions": pred,
                                                                                        "weight": jnp.sum(w)}


class _ToyMetrics(ev.Evaluator):
  def __init__(self, **kw):
    super().__init__(**kw)
    self.errors = []

  def update(self, batch, padded, out, host):
    keep = out["weights"] > 0
    self.errors += list(np.abs(np.asarray(out["predictions"]) - np.asarray(out["labels"]))[keep])

  def result(self, loss):
    return {"mae": float(np.mean(self.errors)), "within_half": float(np.mean(np.asarray(self.errors) <= 0.5))}


@pytest.fixture
def toy_kind():
  spec = kinds.register_kind(kinds.KindSpec("ordinal", head="regression", loss=_toy_loss, evaluator=_ToyMetrics,
                                            formatters={"encoder": _toy_format}))
  yield spec
  kinds.unregister_kind("ordinal")


def test_a_new_kind_is_one_registration(toy_kind):
  rows = [{"text": f"item {i} " + "ok " * (i % 3), "score": float(i % 5)} for i in range(7)]
  task = Task("toy_ordinal", "ordinal", ("text",), None, (), lambda split, data_dir: rows, splits=("test",))
  assert "ordinal" in kinds.known_kinds()
  with pytest.raises(ValueError, match=r"cannot be formatted for model_family='decoder'; supported: \['encoder'\]"):
    formats.formatter("ordinal", "decoder")

  model = Transformer(get_preset("tiny-bert", vocab_size=64, d_model=32, n_heads=2, d_ff=64, n_layers=1,
                                 max_positions=32), task=toy_kind.head, rngs=nnx.Rngs(0))
  mesh = shd.make_mesh(1, 1, 1, devices=jax.devices()[:1])
  prog = steps.build_program(model, nnx.Param, optax.sgd(0.1), kind="ordinal", mesh=mesh)
  params = steps.init_state(prog, 0)["params"]
  frozen, rest = steps.place_frozen(prog)

  # 7 rows in batches of 4: the last batch has one padding row, which must not count.
  loader = data.make_loader(task, "test", tokenizer=None, batch_size=4, max_length=16, shuffle=False,
                            num_epochs=1, drop_remainder=False)
  m = ev.evaluate(prog, params, frozen, rest, loader, task=task, local_rows=4)

  whole = _toy_format(task, rows, None, 16)
  pred = np.asarray(model(input_ids=jnp.asarray(whole["input_ids"]),
                          attention_mask=jnp.asarray(whole["attention_mask"]))["logits"][:, 0])
  errors = np.abs(pred - whole["labels"])
  assert m["examples"] == 7
  assert m["loss"] == pytest.approx(float(np.mean(errors)), rel=1e-4)  # the toy loss, through the eval step
  assert m["mae"] == pytest.approx(float(np.mean(errors)), rel=1e-4)  # the toy evaluator
  assert m["within_half"] == pytest.approx(float(np.mean(errors <= 0.5)))
  loss, aux = losses.loss_and_predictions("ordinal", {"logits": jnp.asarray(pred)[:, None]},
                                          {"labels": jnp.asarray(whole["labels"])})
  assert float(loss) == pytest.approx(float(np.mean(errors)), rel=1e-5) and aux["predictions"].shape == (7,)


def test_registry_and_train_import_without_tensorflow():
  """kinds, models, peft and train import (and every built-in kind resolves) with TensorFlow unimportable."""
  code = """
import sys
class Block:
  def find_spec(self, name, path=None, target=None):
    if name.split(".")[0] in ("tensorflow", "tensorflow_datasets"):
      raise ImportError("blocked " + name)
sys.meta_path.insert(0, Block())
from lightft_jax import kinds, models, peft
from lightft_jax.train import evaluate, loop, losses, steps
for name in kinds.known_kinds():
  spec = kinds.get_kind(name)
  kinds.resolve(spec.loss), kinds.resolve(spec.evaluator)
  [spec.formatter(f) for f in spec.formatters]
  [kinds.resolve(r) for r in (spec.target, spec.metric_inputs) if r is not None]
assert not any(m == "tensorflow" or m.startswith(("tensorflow.", "tensorflow_datasets")) for m in sys.modules)
"""
  subprocess.run([sys.executable, "-c", code], check=True, timeout=300)
