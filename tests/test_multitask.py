"""Multi-task mixtures: sampling proportions, task ids per example, loader resume, short multi-task runs with
per-task and average metrics, and a held-out task evaluated from its context alone."""

import importlib.util
import json
import random
from pathlib import Path

import numpy as np
import pytest

from lightft_jax.data import mixture as mx
from lightft_jax.data.tasks import REGISTRY
from lightft_jax.models import assets
from lightft_jax.models.tokenizer import Tokenizer

ROOT = Path(__file__).parent.parent
# Three tiny tasks with distinctive words, 2, 3 and 2 labels.
WORDS = {"polarity": (["good", "great"], ["bad", "awful"]),
         "topic": (["football", "tennis"], ["stocks", "banks"], ["planets", "atoms"]),
         "formality": (["dear sir"], ["hey dude"])}
SIZES = {"polarity": 60, "topic": 30, "formality": 20}


def write_task(d: Path, name: str) -> dict:
  r = random.Random(name)
  d.mkdir(parents=True, exist_ok=True)
  paths = {}
  for split, n in (("train", SIZES[name]), ("validation", 12), ("test", 10)):
    paths[split] = str(d / f"{name}_{split}.jsonl")
    with open(paths[split], "w") as f:
      for _ in range(n):
        y = r.randrange(len(WORDS[name]))
        f.write(json.dumps({"text": f"{name} says {r.choice(WORDS[name][y])}", "label": y}) + "\n")
  return {"path": paths, "name": name, "label_names": [str(i) for i in range(len(WORDS[name]))]}


@pytest.fixture(scope="module")
def entries(tmp_path_factory):
  d = tmp_path_factory.mktemp("mt")
  return [("jsonl", write_task(d, n)) for n in WORDS]


@pytest.fixture(scope="module")
def tok():
  return Tokenizer.from_file(assets.minilm_dir())


def test_weights_follow_the_formulas():
  n = np.array([1000.0, 300.0, 50.0])
  np.testing.assert_allclose(mx.mixture_weights(n, "proportional"), n / n.sum())
  np.testing.assert_allclose(mx.mixture_weights(n, "uniform"), np.full(3, 1 / 3))
  for t in (1.0, 2.0, 10.0):
    np.testing.assert_allclose(mx.mixture_weights(n, "temperature", t), n ** (1 / t) / (n ** (1 / t)).sum())
  np.testing.assert_allclose(mx.mixture_weights(n, "temperature", 1.0), mx.mixture_weights(n, "proportional"))
  capped = np.minimum(n, 200)
  np.testing.assert_allclose(mx.mixture_weights(n, "proportional", size_cap=200), capped / capped.sum())
  with pytest.raises(ValueError, match="mixture_sampling"):
    mx.mixture_weights(n, "random")
  c = mx.window_counts([0.7, 0.299, 0.001], 100)
  assert c.sum() == 100 and c.min() >= 1


@pytest.mark.parametrize("sampling,temperature", [("proportional", 1.0), ("uniform", 1.0), ("temperature", 3.0)])
def test_stream_proportions_and_task_ids(entries, tok, sampling, temperature):
  mix = mx.get_mixture(entries)
  sizes = [SIZES[n] for n in mix.names]
  p = mx.mixture_weights(sizes, sampling, temperature)
  window, batch = 50, 10
  loader = mx.make_mixture_loader(mix, "train", tokenizer=tok, batch_size=batch, max_length=16, weights=p,
                                  seed=3, window=window, padding="longest")
  ids = []
  for _ in range(4 * window // batch):  # four whole windows
    b = next(loader)
    assert b["task_ids"].shape == (batch,) and b["task_ids"].dtype == np.int32
    for row, t in zip(b["input_ids"], b["task_ids"]):  # the example's text names its task
      assert tok.decode([int(x) for x in row]).split()[0] == mix.names[t]
    assert np.all(b["labels"] < mix.label_sizes[b["task_ids"]])  # each task's own label ids
    ids += b["task_ids"].tolist()
  counts = np.bincount(ids, minlength=3)
  np.testing.assert_array_equal(counts, 4 * mx.window_counts(p, window))  # exact in every window
  np.testing.assert_allclose(counts / counts.sum(), p, atol=1.5 / window)
  assert len(set(ids[:window])) == 3 and ids[:window] != sorted(ids[:window])  # mixed, in a shuffled order


def test_mixed_batches_pad_pairs_and_singles(tmp_path, tok):
  single = REGISTRY["jsonl"](path=str(write_task(tmp_path, "polarity")["path"]["train"]), name="single")
  pair_path = tmp_path / "pairs.jsonl"
  pair_path.write_text("".join(json.dumps({"a": f"premise {i}", "b": "a much longer hypothesis " * 3, "label": i % 2})
                               + "\n" for i in range(4)))
  pair = REGISTRY["jsonl"](path=str(pair_path), text_fields=("a", "b"), name="pair")
  rows = [(0, single.examples("train")[0]), (1, pair.examples("train")[0]), (0, single.examples("train")[1])]
  b = mx.format_mixed([single, pair], rows, tok=tok, max_length=32, padding="longest", model_family="encoder",
                      per_task={"adapter_ids": np.array([5, 7])})
  assert b["input_ids"].shape == b["attention_mask"].shape == b["token_type_ids"].shape
  assert b["task_ids"].tolist() == [0, 1, 0] and b["adapter_ids"].tolist() == [5, 7, 5]
  assert b["token_type_ids"][1].max() == 1 and b["token_type_ids"][[0, 2]].max() == 0
  assert np.all(b["input_ids"][b["attention_mask"] == 0] == tok.pad_token_id)


def test_loader_resume_gives_the_same_batches(entries, tok):
  mix = mx.get_mixture(entries, heads="shared")
  assert mix.num_labels == 3 and mix.label_offsets.tolist() == [0, 0, 0]
  assert mx.get_mixture(entries).label_offsets.tolist() == [0, 2, 5]
  kw = dict(tokenizer=tok, batch_size=8, max_length=16, weights=[0.5, 0.3, 0.2], seed=1, window=20)
  a = mx.make_mixture_loader(mix, "train", **kw)
  for _ in range(3):
    next(a)
  state = json.loads(json.dumps(a.get_state()))  # what a checkpoint stores
  want = [next(a) for _ in range(4)]  # crosses window and epoch boundaries
  b = mx.make_mixture_loader(mix, "train", **kw)
  b.set_state(state)
  for w in want:
    got = next(b)
    assert set(got) == set(w) and all(np.array_equal(got[k], w[k]) for k in w)


def test_mixture_errors(entries):
  with pytest.raises(ValueError, match="kinds"):
    mx.get_mixture([entries[0], ("jsonl", {**entries[1][1], "kind": "regression", "label_names": None})])
  with pytest.raises(ValueError, match="twice"):
    mx.get_mixture([entries[0], entries[0]])
  with pytest.raises(ValueError, match="not a task name"):
    mx.parse_entries([3])
  assert mx.parse_entries("a+b") == [("a", {}), ("b", {})]


def multitask_config(entries, method, **kw):
  spec = importlib.util.spec_from_file_location("multitask_config", ROOT / "configs" / "multitask.py")
  mod = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(mod)
  names = "+".join(e[1]["name"] for e in entries)
  arg = f"method={method},tasks={names},model=tiny-bert,steps=2,batch=8,max_length=16,eval_every=0," + \
      ",".join(f"{k}={v}" for k, v in kw.items())
  c = mod.get_config(arg.rstrip(","))
  c.model.overrides = {"vocab_size": 30522, "d_model": 32, "n_heads": 2, "d_ff": 64, "max_positions": 64,
                       "n_layers": 2}
  c.task.mixture = tuple(entries)
  c.task.mixture_window = 20
  c.checkpoint.async_save = False
  c.wandb.mode = "disabled"
  c.logging.progress = False
  c.logging.plots = False
  return c


@pytest.mark.parametrize("method", ["hyper_lora", "task_gated_adapter"])
def test_multitask_run_reports_per_task_and_average(entries, tmp_path, method):
  from lightft_jax.train.loop import train
  cfg = multitask_config(entries, method)
  assert cfg.peft.n_tasks == 3 and cfg.eval.metric == "average"
  res = train(cfg, tmp_path / method)
  saved = json.loads((tmp_path / method / "results.json").read_text())
  for split, n in (("eval", 12), ("test", 10)):
    m = saved[split]
    for name in WORDS:
      assert 0.0 <= m[f"{name}/accuracy"] <= 1.0 and m[f"{name}/examples"] == n
    assert m["average/accuracy"] == pytest.approx(np.mean([m[f"{n_}/accuracy"] for n_ in WORDS]))
    assert m["average"] == m["average/accuracy"] and m["examples"] == 3 * n
  assert saved["mixture"]["tasks"] == list(WORDS) and saved["mixture"]["classifier_outputs"] == 7
  assert saved["mixture"]["label_offsets"] == [0, 2, 5] and saved["step"] == 2
  assert "== polarity ==" in (tmp_path / method / "classification_report.txt").read_text()
  assert res["trainable_params_sha256"] == saved["trainable_params_sha256"]


def test_named_adapters_per_task_get_adapter_ids(entries, tmp_path):
  from lightft_jax.train.workload import build_workload
  cfg = multitask_config(entries, "task_adapters")
  work = build_workload(cfg)
  b = next(work.batches)
  from lightft_jax.peft import named
  assert named.adapter_names(work.model) == tuple(WORDS)
  np.testing.assert_array_equal(b["adapter_ids"], b["task_ids"])  # adapter i is task i's


def test_held_out_task_from_its_context(entries, tmp_path, monkeypatch):
  """condition=context: every task's condition is the mean embedding of k of its examples; the held-out task
  (never trained on) is evaluated with its own k-example condition and no gradient step."""
  from lightft_jax.models import sentence
  from lightft_jax.train import build
  from lightft_jax.train.loop import train
  cfg = multitask_config(entries[:2], "hyper_lora", condition="context", context_k=4, held_out="formality_heldout")
  cfg.peft.condition_dim = 32
  held = entries[2][1]
  # The held-out task is built by name with options: register a factory for it under its own name.
  from lightft_jax.data import tasks as data_tasks
  monkeypatch.setitem(data_tasks.REGISTRY, "formality_heldout",
                      lambda **kw: REGISTRY["jsonl"](**{**held, "name": "formality_heldout"}))
  encoded = []

  def tiny_encoder(path=None, **kw):  # a random 32-wide encoder instead of MiniLM (fast)
    enc = sentence.SentenceEncoder(build.build_model(cfg.model, task="base", seed=1), build.build_tokenizer(cfg.model))
    call = enc.__call__

    class Recording:
      dim = enc.dim

      def __call__(self, texts):
        encoded.append(list(texts))
        return call(texts)
    return Recording()

  monkeypatch.setattr(sentence.SentenceEncoder, "load", staticmethod(tiny_encoder))
  assert cfg.task.mixture_heads == "shared" and cfg.peft.condition == "context"
  res = train(cfg, tmp_path / "ctx")
  assert [len(t) for t in encoded] == [4, 4, 4]  # k examples of each trained task, then of the held-out one
  assert all(t.startswith("formality") for t in encoded[2]) and all(t.startswith("polarity") for t in encoded[0])
  m = res["eval"]
  assert m["held_out/formality_heldout/examples"] == 12 and 0 <= m["held_out/formality_heldout/accuracy"] <= 1
  assert "average" in m and "held_out/average" not in m  # the held-out task is not part of the average
  assert res["test"]["held_out/formality_heldout/examples"] == 10
  assert res["mixture"]["held_out_task"] == "formality_heldout" and res["mixture"]["context_k"] == 4


def test_real_tasks_mix_under_mock_data(tok, tmp_path):
  """The default mixture's three real TFDS tasks (rotten_tomatoes, convention_party, debate_party) through the
  mixture loader, offline: tfds.testing.mock_data gives random records with each builder's features."""
  tfds = pytest.importorskip("tensorflow_datasets")
  from lightft_jax.data import scattertext_politics  # noqa: F401  (registers the builder)
  dd = str(tmp_path / "tfds")
  with tfds.testing.mock_data(num_examples=12, data_dir=dd):
    mix = mx.get_mixture(("rotten_tomatoes", "convention_party", "debate_party"), data_dir=dd)
    assert mix.label_sizes.tolist() == [2, 2, 3] and mix.num_labels == 7
    loader = mx.make_mixture_loader(mix, "train", tokenizer=tok, batch_size=8, max_length=16,
                                    weights=[0.5, 0.3, 0.2], window=20, data_dir=dd)
    b = next(loader)
  assert b["input_ids"].shape == (8, 16) and set(b["task_ids"].tolist()) <= {0, 1, 2}
  assert np.all(b["labels"] < mix.label_sizes[b["task_ids"]])


def test_politics_builder_from_small_files(tmp_path):
  """scattertext_politics from small files in the members' formats: paragraphs of >= 8 words labelled with the
  party, split by speaker (no speaker in two splits); debate statements of >= 3 words, three sides."""
  import csv
  import gzip
  import io
  pytest.importorskip("tensorflow_datasets")
  from lightft_jax.data import scattertext_politics as sp
  buf = io.StringIO()
  w = csv.writer(buf)
  w.writerow(["party", "speaker", "text"])
  for s in range(30):
    party = "democrat" if s % 2 else "republican"
    w.writerow([party, f"SPEAKER {s}", f"Thank you.\nParagraph one of speaker {s} has more than eight words in it.\n"
                                       f"Paragraph two of speaker {s} also has more than eight words."])
  conv = tmp_path / "political_data.csv"
  conv.write_text(buf.getvalue())
  task = REGISTRY["convention_party"](source_path=str(conv), data_dir=str(tmp_path / "tfds"))
  splits = {s: task.examples(s) for s in ("train", "validation", "test")}
  assert sum(len(v) for v in splits.values()) == 60 and all(splits.values())
  speakers = {s: {e["group"] for e in v} for s, v in splits.items()}
  assert not speakers["train"] & speakers["validation"] and not speakers["train"] & speakers["test"]
  for s, v in splits.items():
    for e in v:
      assert sp.split_of(e["group"]) == s and "Thank" not in e["text"]
      assert e["label"] == (0 if int(e["group"].split()[1]) % 2 else 1)
  buf = io.StringIO()
  w = csv.writer(buf)
  w.writerow(["speaker", "statement", "debate", "party", "speaker and debate"])
  for i in range(60):
    side = ["Democratic", "Republican", "Moderator"][i % 3]
    w.writerow(["X", f"statement number {i} from the {side} side", "1st", side, "X 1st"])
    w.writerow(["X", "Thank you.", "1st", side, "X 1st"])  # under 3 words: dropped
  deb = tmp_path / "presidential_debates_2016.csv.gz"
  deb.write_bytes(gzip.compress(buf.getvalue().encode()))
  task = REGISTRY["debate_party"](source_path=str(deb), data_dir=str(tmp_path / "tfds"))
  rows = [e for s in ("train", "validation", "test") for e in task.examples(s)]
  assert len(rows) == 60 and task.label_names == ["Democratic", "Republican", "Moderator"]
  assert all(e["label"] == int(e["text"].split()[2]) % 3 for e in rows)


@pytest.mark.parametrize("method", ["hyper_adapter", "hyper_lora", "hyper_prefix", "hyper", "moe_lora",
                                    "task_gated_adapter", "task_adapters", "adapter", "full"])
def test_every_config_method_takes_mixed_batches(entries, method):
  """configs/multitask.py's methods on one mixed batch: the objective's loss is finite and the predictions are
  each example's own task's class ids."""
  import jax.numpy as jnp
  from lightft_jax.train.workload import build_workload
  work = build_workload(multitask_config(entries, method))
  b = next(work.batches)
  loss, aux = work.objective(work.model, {k: jnp.asarray(v) for k, v in b.items()}, False)
  assert np.isfinite(float(loss))
  pred = np.asarray(aux["predictions"])
  assert np.all((pred >= 0) & (pred < [len(WORDS[n]) for n in np.array(list(WORDS))[b["task_ids"]]]))


def test_interrupted_multitask_run_resumes_to_the_same_parameters(entries, tmp_path):
  from lightft_jax.train.loop import train
  def config(steps):
    c = multitask_config(entries, "adapter", steps=4, eval_every=2)
    c.schedule.name, c.total_steps = "constant", steps  # (a decaying schedule follows total_steps)
    return c
  full = train(config(4), tmp_path / "a")
  train(config(2), tmp_path / "b")  # interrupted after 2 steps (and its data position saved)
  resumed = train(config(4), tmp_path / "b")
  assert resumed["trainable_params_sha256"] == full["trainable_params_sha256"]
