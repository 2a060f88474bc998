"""Language-model fine-tuning: text sources (lightft_jax.data.text_lm), packing, configs/lm_finetune.py and
configs/gpt2_wikitext.py end to end (2 steps on a tiny decoder), generated samples (lightft_jax.train.samples)."""

import json
import zipfile

import numpy as np
import pytest

from lightft_jax import data
from lightft_jax.data import text_lm

WORDS = ("the quick brown fox jumps over a lazy dog while seven wizards quietly hum old songs about rivers "
         "mountains and cities").split()


def _paragraphs(n: int, seed: int = 0) -> list[str]:
  rng = np.random.default_rng(seed)
  return [" ".join(rng.choice(WORDS, size=rng.integers(12, 40))).capitalize() + "." for _ in range(n)]


@pytest.fixture(scope="module")
def tok():
  from lightft_jax.models.assets import smollm2_gguf
  from lightft_jax.models.hf import load_tokenizer
  return load_tokenizer(str(smollm2_gguf()))


@pytest.fixture(scope="module")
def tok_json(tok, tmp_path_factory):
  """SmolLM2's tokenizer as tokenizer.json + tokenizer_config.json (reading the GGUF file takes seconds)."""
  d = tmp_path_factory.mktemp("smollm2_tokenizer")
  tok.tok.save(str(d / "tokenizer.json"))
  names = {k: tok.tok.id_to_token(getattr(tok, f"{k}_id")) for k in ("bos_token", "eos_token", "pad_token")}
  (d / "tokenizer_config.json").write_text(json.dumps(names))
  return str(d)


@pytest.fixture
def corpus(tmp_path):
  """notes.txt: 40 blank-line-separated paragraphs (the second one two lines long)."""
  paras = _paragraphs(40)
  paras[1] = paras[1] + "\n" + "A second line of the same paragraph."
  path = tmp_path / "notes.txt"
  path.write_text("\n\n".join(paras) + "\n", encoding="utf-8")
  return path, paras


def test_txt_jsonl_and_directory_documents(tmp_path, corpus):
  path, paras = corpus
  assert text_lm.read_documents(path) == paras  # one document per paragraph, lines kept
  assert text_lm.read_documents(path, unit="file") == ["\n\n".join(paras)]
  docs = tmp_path / "docs"
  docs.mkdir()
  for i, p in enumerate(paras[:3]):
    (docs / f"{i}.txt").write_text(p + "\n\nmore of file " + str(i), encoding="utf-8")
  assert text_lm.read_documents(docs) == [f"{p}\n\nmore of file {i}" for i, p in enumerate(paras[:3])]
  jl = tmp_path / "d.jsonl"
  jl.write_text("\n".join(json.dumps({"body": p, "id": i}) for i, p in enumerate(paras[:5])), encoding="utf-8")
  assert text_lm.read_documents(jl, text_field="body") == paras[:5]
  with pytest.raises(ValueError, match="missing field"):
    text_lm.read_documents(jl)

  task = data.get_task("lm_text", path=str(path), validation=0.1, test=0.1)
  assert task.kind == "lm" and task.metric_names == ("perplexity",)
  split = {s: [e["text"] for e in task.examples(s)] for s in ("train", "validation", "test")}
  assert [len(split[s]) for s in ("train", "validation", "test")] == [32, 4, 4]
  assert sorted(sum(split.values(), [])) == sorted(paras)  # every paragraph in exactly one split
  by_file = data.get_task("lm_text", path={"train": str(jl), "validation": str(path)}, text_field="body")
  assert by_file.splits == ("train", "validation") and len(by_file.open("train")) == 5


def test_long_documents_split_and_wikitext_articles(tmp_path):
  long = "\n\n".join(_paragraphs(6, seed=1))
  pieces = text_lm.split_long(long, 120)
  assert all(len(p) <= 120 for p in pieces) and len(pieces) > 6
  assert " ".join(" ".join(pieces).split()) == " ".join(long.split())  # nothing lost but whitespace
  raw = (" \n = Alpha = \n \n Alpha is a letter .\n \n = = History = = \n \n It is old .\n \n"
         " = Beta = \n \n Beta follows alpha .\n")
  assert text_lm.wikitext_articles(raw) == [
      "= Alpha = \n \n Alpha is a letter .\n \n = = History = = \n \n It is old .",
      "= Beta = \n \n Beta follows alpha ."]
  zpath = tmp_path / "wikitext-103-raw-v1.zip"
  with zipfile.ZipFile(zpath, "w") as z:
    for member in text_lm.WIKITEXT_FILES.values():
      z.writestr(f"wikitext-103-raw/{member}", raw)
  task = data.get_task("wikitext103", source_path=str(zpath), max_chars=30)
  docs = [e["text"] for e in task.examples("validation")]
  assert docs[0] == "= Alpha =" and all(len(d) <= 30 for d in docs) and docs[-1] == "Beta follows alpha ."


def test_tfds_text_feature_as_documents():
  tfds = pytest.importorskip("tensorflow_datasets")
  with tfds.testing.mock_data(num_examples=6):  # random records with the real features
    task = data.get_task("tfds_lm", builder="imdb_reviews", split_map={"validation": "test"})
    assert (task.name, task.kind) == ("imdb_reviews", "lm") and len(task.open("validation")) == 6
    assert isinstance(task.open("train")[0]["text"], str)
    pieces = data.get_task("tfds_lm", builder="imdb_reviews", max_chars=5).examples("train")
    assert len(pieces) > 6 and all(0 < len(p["text"]) <= 5 for p in pieces)
    with pytest.raises(ValueError, match="no text feature 'body'"):
      data.get_task("tfds_lm", builder="imdb_reviews", text_field="body").open("train")[0]


def test_packing_gives_full_rows(corpus, tok):
  """Whole documents (BOS + text + EOS, all shorter than a row here) packed several to a row. The packer
  (grain FirstFitPack, as many bins as rows in a batch) fills about 80-90% of the tokens of these rows."""
  path, _ = corpus
  task = data.get_task("lm_text", path=str(path))
  loader = iter(data.make_loader(task, "train", tokenizer=tok, batch_size=4, max_length=64, model_family="decoder",
                                 seed=0))
  fills = []
  for _ in range(4):
    b = next(loader)
    seg, mask, labels = b["segment_ids"], b["attention_mask"], b["labels"]
    assert b["input_ids"].shape == (4, 64) and seg.max() >= 2  # several documents share a row
    assert np.array_equal(mask, (seg > 0).astype(mask.dtype)) and np.all(mask[:, 0] == 1)
    same = (seg[:, 1:] == seg[:, :-1]) & (seg[:, 1:] > 0)
    assert np.array_equal(labels[:, :-1][same], b["input_ids"][:, 1:][same])  # next token within a document
    starts = (b["positions"] == 0) & (seg > 0)
    assert np.all(b["input_ids"][starts] == tok.bos_token_id)  # every document starts with BOS ...
    assert np.sum(labels == tok.eos_token_id) == seg.max(1).sum()  # ... and ends with EOS (none is cut)
    fills.append(mask.mean())
  assert np.mean(fills) > 0.75, fills


def _train(spec, workdir, overrides=()):
  from lightft_jax.train import config_lib
  from lightft_jax.train.loop import train
  fast = [("logging.progress", "False"), ("logging.plots", "False"), ("wandb.mode", "disabled"),
          ("checkpoint.async_save", "False")]  # batches of 8: one row per simulated device
  config = config_lib.load_config(spec, fast + list(overrides))
  return config, train(config, workdir)


TINY = [("model.overrides.d_model", "32"), ("model.overrides.n_heads", "2"), ("model.overrides.d_ff", "64"),
        ("model.overrides.n_layers", "1")]


def test_lm_finetune_two_steps(tmp_path, corpus, tok_json):
  path, _ = corpus
  spec = (f"configs/lm_finetune.py:model=tiny-gpt2,data={path},steps=2,batch=8,max_length=32,eval_limit=8,"
          "samples=2,max_new_tokens=5")
  held_out = [("task.options.validation", "0.3"), ("task.options.test", "0.3")]  # a batch of 8 rows each
  config, res = _train(spec, tmp_path / "run", TINY + held_out + [("model.tokenizer", tok_json)])
  assert config.eval.at_start and config.task.name == "lm_text" and config.peft.method == "lora"
  assert res["status"] == "completed" and res["step"] == 2 and res["task"] == "lm_text"
  for key in ("eval_at_start", "eval", "test"):
    assert res[key]["examples"] > 0 and np.isfinite(res[key]["perplexity"]) and res[key]["perplexity"] > 1
  assert res["eval"]["perplexity"] != res["eval_at_start"]["perplexity"]  # the same rows, after 2 steps
  assert json.loads((tmp_path / "run" / "results.json").read_text())["samples"] == "samples.json"
  samples = json.loads((tmp_path / "run" / "samples.json").read_text())
  assert len(samples) == 2
  assert all(s["greedy"] and s["max_new_tokens"] == 5 and s["prompt"] and s["reference"] for s in samples)
  assert "### sample 1" in (tmp_path / "run" / "samples.txt").read_text()


def test_gpt2_wikitext_configs(tmp_path, tok_json):
  from lightft_jax.train import config_lib
  full = config_lib.load_config(f"configs/gpt2_wikitext.py:model={tmp_path}")  # a checkpoint dir: no download
  assert (full.epochs, full.batch_size, full.checkpoint.max_to_keep, full.model.max_length) == (3.0, 4, 2, 1024)
  assert full.task.name == "wikitext103" and full.eval.at_start and full.eval.metric == "perplexity"
  config, res = _train("configs/gpt2_wikitext.py:smoke", tmp_path / "smoke",
                       TINY + [("model.tokenizer", tok_json), ("batch_size", "8"), ("task.test_split", ""),
                               ("task.eval_limit", "8"), ("samples.num", "0")])
  assert config.model.name == "tiny-gpt2" and res["step"] == 2 and res["status"] == "completed"
  assert np.isfinite(res["eval_at_start"]["perplexity"]) and np.isfinite(res["eval"]["perplexity"])
  assert sorted(p.name for p in (tmp_path / "smoke" / "checkpoints").iterdir()) == ["1", "2"]
  assert not (tmp_path / "smoke" / "samples.json").exists()  # samples.num=0: none (the smoke config asks for 2)


@pytest.mark.slow
def test_smollm2_lora_few_steps(tmp_path, corpus):
  """The real SmolLM2-135M (GGUF) with LoRA: 3 steps on the corpus lower the perplexity of the same rows."""
  path, _ = corpus
  spec = f"configs/lm_finetune.py:data={path},steps=3,batch=8,max_length=32,eval_limit=8,samples=1,lr=3e-3"
  _, res = _train(spec, tmp_path / "run", [("task.test_split", ""), ("task.options.validation", "0.3")])
  assert res["eval"]["examples"] == res["eval_at_start"]["examples"] == 8  # 12 one-document rows: one full batch
  assert res["eval"]["perplexity"] < res["eval_at_start"]["perplexity"]
  assert json.loads((tmp_path / "run" / "samples.json").read_text())[0]["continuation"]


def test_samples_fit_the_model_positions(tok, tmp_path):
  """A prompt longer than the model's positions allow keeps its last tokens; samples.txt shows each sample."""
  from flax import nnx
  from lightft_jax.models import Transformer, get_preset
  from lightft_jax.train import samples
  cfg = get_preset("tiny-gpt2", vocab_size=tok.vocab_size, max_positions=16, n_layers=1, d_model=32, n_heads=2)
  model = Transformer(cfg, task="lm", rngs=nnx.Rngs(0))
  long = " ".join(WORDS * 2)
  prompts = [{"ids": samples._with_bos(tok.encode(t, add_special_tokens=False), tok), "prompt": t}
             for t in ("Hello there", long)]
  assert samples.max_prompt_length(model, 4) == 13 and len(prompts[1]["ids"]) > 13
  records = samples.generate_samples(model, tok, prompts, max_new_tokens=4)
  assert [r["prompt"] for r in records] == ["Hello there", long]
  assert all(r["greedy"] and r["max_new_tokens"] == 4 and isinstance(r["continuation"], str) for r in records)
  samples.write_samples(tmp_path, records)
  assert json.loads((tmp_path / "samples.json").read_text()) == records
  assert (tmp_path / "samples.txt").read_text().startswith("### sample 0 (greedy, max_new_tokens=4)\nHello there >>> ")
