"""Training conveniences: RMSprop beside the other optimizers, dropout read from HF config.json, validation /
test splits carved out of one JSONL / CSV file, and a clear error for pickle-only (pytorch_model.bin)
checkpoint directories."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from lightft_jax.train import config_lib, optim

# ----------------------------------------------------------------------------- RMSprop

TOY = {"w": jnp.asarray([[1.0, -2.0], [0.5, 3.0]]), "b": jnp.asarray([0.3, -0.1])}
X = jnp.asarray(np.random.RandomState(0).randn(8, 2), jnp.float32)
Y = jnp.asarray(np.random.RandomState(1).randn(8, 2), jnp.float32)


def toy_loss(p):
  return jnp.mean((X @ p["w"] + p["b"] - Y) ** 2)


def run(tx, steps=25):
  params, state = TOY, tx.init(TOY)
  for _ in range(steps):
    updates, state = tx.update(jax.grad(toy_loss)(params), state, params)
    params = optax.apply_updates(params, updates)
  return params


def rmsprop_config(**kw):
  c = config_lib.base_config()
  c.optimizer.name, c.optimizer.lr, c.optimizer.clip_norm, c.optimizer.momentum = "rmsprop", 0.01, 0.0, 0.0
  c.schedule.name = "constant"
  for k, v in kw.items():
    c.optimizer[k] = v
  return c


@pytest.mark.parametrize("decay,eps,momentum,centered", [(0.9, 1e-8, 0.0, False), (0.95, 1e-6, 0.9, True)])
def test_rmsprop_is_optax_rmsprop(decay, eps, momentum, centered):
  c = rmsprop_config(decay=decay, eps=eps, momentum=momentum, centered=centered)
  ours = run(optim.make_optimizer(c.optimizer, c.schedule, TOY, 25))
  ref = run(optax.rmsprop(0.01, decay=decay, eps=eps, momentum=momentum or None, centered=centered))
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7), ours, ref)
  assert toy_loss(ours) < toy_loss(TOY)


def test_rmsprop_weight_decay_follows_the_mask_and_clipping_applies():
  c = rmsprop_config(weight_decay=0.1, clip_norm=0.5)
  ours = run(optim.make_optimizer(c.optimizer, c.schedule, TOY, 25))
  mask = optim.decay_mask(TOY, c.optimizer.no_decay)
  assert mask == {"w": True, "b": False}
  ref = run(optax.chain(optax.clip_by_global_norm(0.5), optax.add_decayed_weights(0.1, mask),
                        optax.rmsprop(0.01, decay=0.9, eps=1e-8)))
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7), ours, ref)
  tx = optim.make_optimizer(c.optimizer, c.schedule, TOY, 25)  # zero gradient: only weight decay moves
  updates, _ = tx.update(jax.tree.map(jnp.zeros_like, TOY), tx.init(TOY), TOY)
  assert np.all(np.asarray(updates["w"]) * np.asarray(TOY["w"]) < 0)  # the matrix decays towards 0 ...
  np.testing.assert_array_equal(updates["b"], 0.0)  # ... the bias does not


def test_rmsprop_in_the_optimizer_list():
  assert "rmsprop" in optim.OPTIMIZERS
  c = rmsprop_config()
  c.optimizer.name = "rmsprp"
  with pytest.raises(ValueError, match="rmsprop"):
    optim.make_optimizer(c.optimizer, c.schedule, TOY, 5)


# ----------------------------------------------------------------------------- dropout from config.json

def hf_checkpoint(path, preset, task, **hf_config):
  """Our tiny `preset` saved as an HF checkpoint, its config.json rewritten by `transformers`' own config class
  with `hf_config` (e.g. hidden_dropout_prob=0.2)."""
  transformers = pytest.importorskip("transformers")
  from flax import nnx
  from lightft_jax.models import Transformer, get_preset
  from lightft_jax.models.hf import save_pretrained
  save_pretrained(Transformer(get_preset(preset), task=task, num_labels=2 if task == "classification" else None,
                              rngs=nnx.Rngs(0)), path)
  config = transformers.AutoConfig.from_pretrained(path)
  for k, v in hf_config.items():
    setattr(config, k, v)
  config.save_pretrained(path)
  return path


@pytest.mark.parametrize("preset,task,hf_config,rate,attn_rate", [
    ("tiny-bert", "classification", {"hidden_dropout_prob": 0.2, "attention_probs_dropout_prob": 0.3}, 0.2, 0.3),
    ("tiny-gpt2", "lm", {"resid_pdrop": 0.15, "embd_pdrop": 0.15, "attn_pdrop": 0.05}, 0.15, 0.05),
    ("tiny-t5", "lm", {"dropout_rate": 0.05}, 0.05, 0.05),  # T5: one rate, attention probabilities too
    ("tiny-llama", "lm", {"attention_dropout": 0.1}, 0.0, 0.1),  # Llama drops out attention probabilities only
    ("tiny-llama", "lm", {"attention_dropout": 0.0}, 0.0, 0.0),
])
def test_dropout_comes_from_config_json_and_an_override_wins(tmp_path, preset, task, hf_config, rate, attn_rate):
  from lightft_jax.models.hf import from_pretrained
  path = hf_checkpoint(tmp_path, preset, task, **hf_config)
  n = 2 if task == "classification" else None
  model = from_pretrained(path, task=task, num_labels=n)
  assert (model.cfg.dropout, model.cfg.attention_dropout) == (pytest.approx(rate), pytest.approx(attn_rate))
  off = from_pretrained(path, task=task, num_labels=n, dropout=0.0, attention_dropout=0.0).cfg  # overrides win
  assert (off.dropout, off.attention_dropout) == (0.0, 0.0)
  assert from_pretrained(path, task=task, num_labels=n, dropout=0.3).cfg.dropout == pytest.approx(0.3)
  # returned in eval mode, as transformers does: the same input gives the same output
  ids = jnp.asarray([[5, 6, 7, 8]], jnp.int32)
  kw = {"decoder_input_ids": ids} if preset == "tiny-t5" else {}
  jax.tree.map(np.testing.assert_array_equal, model(ids, **kw), model(ids, **kw))
  model.train()  # and dropout acts in train mode
  assert any(not np.array_equal(a, b) for a, b in zip(jax.tree.leaves(model(ids, **kw)),
                                                     jax.tree.leaves(model(ids, **kw)))) == (rate + attn_rate > 0)


def test_dropout_from_a_bert_checkpoint_through_the_config(tmp_path):
  """`model.name` = a checkpoint directory: dropout from its config.json, `model.overrides.dropout` wins."""
  from lightft_jax.train.build import build_model
  path = hf_checkpoint(tmp_path, "tiny-bert", "classification", hidden_dropout_prob=0.25)
  c = config_lib.base_config()
  c.model.name = str(path)
  assert build_model(c.model, task="classification", num_labels=2).cfg.dropout == pytest.approx(0.25)
  c.model.overrides = {"dropout": 0.0}
  assert build_model(c.model, task="classification", num_labels=2).cfg.dropout == 0.0


# ----------------------------------------------------------------------------- pickle-only checkpoints

def test_pytorch_model_bin_only_directory_names_the_conversion_command(tmp_path, monkeypatch):
  import pickle
  from lightft_jax.models.hf import from_pretrained
  (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert", "hidden_size": 64}))
  (tmp_path / "pytorch_model.bin").write_bytes(b"\x80\x04 not a pickle; never opened")

  def refuse(*a, **k):
    raise AssertionError("the checkpoint was unpickled")

  monkeypatch.setattr(pickle, "load", refuse)
  monkeypatch.setattr(pickle, "loads", refuse)
  with pytest.raises(ValueError) as e:
    from_pretrained(tmp_path, task="classification")
  msg = str(e.value)
  assert "pytorch_model*.bin" in msg and "pickle checkpoints are not loaded" in msg
  command = (f"python -c 'from transformers import AutoModel; AutoModel.from_pretrained(\"{tmp_path}\")"
             f".save_pretrained(\"{tmp_path}\", safe_serialization=True)'")
  assert command in msg


# ----------------------------------------------------------------------------- splits carved out of one file

SPLIT = {"train": 0.8, "validation": 0.1, "test": 0.1}


def write_rows(path, n=53):
  rows = [{"text": f"review {i}", "label": ["negative", "positive"][i % 2]} for i in range(n)]
  if path.suffix == ".jsonl":
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
  else:
    path.write_text("text,label\n" + "".join(f"{r['text']},{r['label']}\n" for r in rows))
  return rows


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_split_carves_disjoint_covering_deterministic_parts(tmp_path, fmt):
  from lightft_jax import data
  rows = write_rows(tmp_path / f"all.{fmt}")
  task = data.get_task(fmt, path=str(tmp_path / f"all.{fmt}"), split=SPLIT, split_seed=3,
                       label_names=("negative", "positive"))
  assert set(task.splits) == {"train", "validation", "test"}
  parts = {s: [e["text"] for e in task.examples(s)] for s in task.splits}
  # cut in name order test | train | validation at round(5.3)=5, round(47.7)=48
  assert [len(parts[s]) for s in ("train", "validation", "test")] == [43, 5, 5]
  every = [t for p in parts.values() for t in p]
  assert sorted(every) == sorted(r["text"] for r in rows) and len(set(every)) == len(rows)  # covering, disjoint
  again = data.get_task(fmt, path=str(tmp_path / f"all.{fmt}"), split=dict(reversed(SPLIT.items())), split_seed=3)
  assert {s: [e["text"] for e in again.examples(s)] for s in again.splits} == parts  # any mapping order
  other = data.get_task(fmt, path=str(tmp_path / f"all.{fmt}"), split=SPLIT, split_seed=4)
  assert [e["text"] for e in other.examples("test")] != parts["test"]  # the seed picks the carve
  assert task.examples("train")[0]["label"] == ["negative", "positive"].index(rows[int(parts["train"][0][7:])]["label"])


def test_split_fractions_are_checked(tmp_path):
  from lightft_jax.data import sources
  write_rows(tmp_path / "all.jsonl", n=10)
  with pytest.raises(ValueError, match="add up to 1"):
    sources.split_records(tmp_path / "all.jsonl", {"train": 0.8, "test": 0.1})
  with pytest.raises(ValueError, match=r"in \(0, 1\]"):
    sources.split_records(tmp_path / "all.jsonl", {"train": 1.1, "test": -0.1})
  with pytest.raises(ValueError, match=r"no rows for \['test'\]"):
    sources.split_records(tmp_path / "all.jsonl", {"train": 0.99, "test": 0.01})
  from lightft_jax import data
  with pytest.raises(ValueError, match="one file"):
    data.get_task("jsonl", path={"train": str(tmp_path / "all.jsonl"), "test": str(tmp_path / "all.jsonl")},
                  split=SPLIT)
  parts = sources.carve_indices(1000, {"a": 0.5, "b": 0.25, "c": 0.25}, seed=0)
  assert [len(p) for p in parts.values()] == [500, 250, 250]
  assert np.array_equal(np.sort(np.concatenate(list(parts.values()))), np.arange(1000))
  assert all(np.array_equal(p, q) for p, q in zip(parts.values(), sources.carve_indices(1000, {"c": .25, "b": .25,
                                                                                               "a": .5}).values()))
