"""The source articles' examples as configs (configs/bert_sst2.py, bert_adapter.py, bert_classifier_report.py):
each `:smoke` config trains 2 steps through the config loader and the trainer (offline, a mock Rotten Tomatoes
dataset) and writes the usual run directory; the paper-size configs hold the articles' settings."""

import json
from pathlib import Path

import pytest

from lightft_jax.train.config_lib import load_config

ROOT = Path(__file__).parent.parent
QUIET = [("logging.plots", "False")]


def config(spec, overrides=()):
  return load_config(str(ROOT / "configs" / spec), [*QUIET, *overrides])


def run(spec, workdir, overrides=()):
  from lightft_jax.jobs import run_job
  run_job(config(spec, overrides), str(workdir))
  return workdir


def check_run_dir(workdir, steps=2):
  res = json.loads((workdir / "results.json").read_text())
  assert res["status"] == "completed" and res["step"] == steps
  for name in ("config.json", "metrics.jsonl"):
    assert (workdir / name).is_file(), name
  assert (workdir / "checkpoints").is_dir()
  assert 0.0 <= res["eval"]["accuracy"] <= 1.0
  return res


# ----------------------------------------------------------------------------- paper-size settings

def test_paper_size_settings(tmp_path):
  c = config("bert_sst2.py:model=/ckpt/bert-base-uncased")
  assert (c.model.name, c.task.name, c.peft.method, c.optimizer.name, c.optimizer.lr, c.epochs, c.batch_size,
          c.model.max_length, c.eval.metric) == ("/ckpt/bert-base-uncased", "sst2", "full", "adamw", 5e-5, 3.0, 32,
                                                 128, "accuracy")
  assert c.task.eval_split == "validation" and c.task.test_split == "" and c.eval_every == 67_349 // 32
  for placement in ("sequential", "parallel"):
    c = config(f"bert_adapter.py:model=/ckpt/bert-base-uncased,placement={placement}")
    assert (c.peft.method, c.peft.placement, c.optimizer.lr, c.task.name) == ("adapter", placement, 1e-4, "sst2")
    (name, full), = c.baselines
    assert name == "full" and full["peft"]["method"] == "full"
  with pytest.raises(ValueError, match="placement"):
    config("bert_adapter.py:smoke,placement=diagonal")
  c = config("bert_classifier_report.py:model=/ckpt/bert-base-cased")
  assert (c.optimizer.lr, c.epochs, c.batch_size, c.model.max_length, c.task.test_split) == (2e-5, 5.0, 16, 128,
                                                                                            "test")
  assert c.eval_every == 10_198 // 16 and c.eval.report_every_eval
  data = tmp_path / "reviews.csv"
  data.write_text("text,label\n" + "".join(f"review {i},{('negative', 'positive')[i % 2]}\n" for i in range(100)))
  c = config(f"bert_classifier_report.py:model=/ckpt/bert-base-cased,data={data}")
  assert c.task.name == "csv" and c.task.options.split.to_dict() == {"train": 0.8, "validation": 0.1, "test": 0.1}
  assert tuple(c.task.options.label_names) == ("negative", "positive") and c.eval_every == 80 // 16
  for spec in ("bert_sst2.py", "bert_adapter.py", "bert_classifier_report.py"):
    with pytest.raises(ValueError, match="needs model=DIR"):
      config(spec)


# ----------------------------------------------------------------------------- smoke runs

def test_bert_sst2_smoke(rotten_tomatoes_dir, tmp_path, monkeypatch):
  monkeypatch.setenv("TFDS_DATA_DIR", str(rotten_tomatoes_dir))
  res = check_run_dir(run("bert_sst2.py:smoke", tmp_path))
  assert res["trainable_params"] == res["total_params"] and "test" not in res  # full fine-tuning; no test split


@pytest.mark.slow  # the default suite runs bert_sst2's smoke run
def test_bert_adapter_smoke_with_full_fine_tuning_beside_it(rotten_tomatoes_dir, tmp_path, monkeypatch):
  monkeypatch.setenv("TFDS_DATA_DIR", str(rotten_tomatoes_dir))
  res = check_run_dir(run("bert_adapter.py:smoke,placement=parallel", tmp_path))
  full = check_run_dir(tmp_path / "baselines" / "full")
  assert res["peft"]["method"] == "adapter" and res["peft"]["placement"] == "parallel"
  assert 0 < res["trainable_params"] < full["trainable_params"] == full["total_params"]
  table = (tmp_path / "comparison.md").read_text()
  assert "| full |" in table and "| adapter |" in table and "accuracy" in table
  rows = json.loads((tmp_path / "comparison.json").read_text())
  assert [r["method"] for r in rows] == ["full", "adapter"]


@pytest.mark.slow  # the default suite runs bert_sst2's smoke run
def test_bert_classifier_report_smoke_writes_dev_and_test_reports(rotten_tomatoes_dir, tmp_path, monkeypatch):
  monkeypatch.setenv("TFDS_DATA_DIR", str(rotten_tomatoes_dir))
  res = check_run_dir(run("bert_classifier_report.py:smoke", tmp_path / "rt"))
  assert "accuracy" in res["test"]
  dev = (tmp_path / "rt" / "reports" / "eval_step_1.txt").read_text()
  test = (tmp_path / "rt" / "classification_report.txt").read_text()
  assert "rotten" in dev and "fresh" in test and "precision" in test
  # one JSONL file of your own, carved into train / validation / test, labels negative / positive
  data = tmp_path / "reviews.jsonl"
  data.write_text("".join(json.dumps({"text": f"a {('dull', 'great')[i % 2]} film number {i}",
                                      "label": ("negative", "positive")[i % 2]}) + "\n" for i in range(60)))
  res = check_run_dir(run(f"bert_classifier_report.py:smoke,data={data}", tmp_path / "mine"))
  assert res["task"] == "jsonl" and "accuracy" in res["test"]
  for report in (tmp_path / "mine" / "reports" / "eval_step_1.txt", tmp_path / "mine" / "classification_report.txt"):
    text = report.read_text()
    assert "negative" in text and "positive" in text
