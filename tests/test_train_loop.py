"""End-to-end runs of train(): run directory contract, resume, NaN stop, small PEFT checkpoints."""

import importlib.util
import json
import random
from pathlib import Path

import pytest

from lightft_jax.train import config_lib
from lightft_jax.train.loop import TrainingDiverged, train

ROOT = Path(__file__).parent.parent
POS, NEG = "good great excellent wonderful superb".split(), "bad awful terrible boring poor".split()


def write_data(d: Path) -> Path:
  r = random.Random(0)
  d.mkdir(parents=True, exist_ok=True)
  for split, n in (("train", 64), ("validation", 20), ("test", 20)):
    with (d / f"{split}.jsonl").open("w") as f:
      for _ in range(n):
        y = r.randint(0, 1)
        f.write(json.dumps({"text": f"the film was {r.choice(POS if y else NEG)}", "label": y}) + "\n")
  return d


def make_config(data: Path, **changes):
  spec = importlib.util.spec_from_file_location("jsonl_classifier", ROOT / "configs" / "jsonl_classifier.py")
  mod = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(mod)
  c = mod.get_config(f"data={data},steps=6,batch=8")
  c.schedule.name = "constant"
  for k, v in changes.items():
    config_lib.set_key(c, k, v)
  return c


@pytest.fixture(scope="module")
def data(tmp_path_factory):
  return write_data(tmp_path_factory.mktemp("data"))


def test_run_directory_resume_and_small_peft_checkpoint(data, tmp_path):
  cfg = make_config(data, peft={"method": "head"}, checkpoint_every=3, eval_every=3, log_every=2)
  res = train(cfg, tmp_path / "a")
  d = tmp_path / "a"
  for f in ("config.json", "metrics.jsonl", "results.json", "training.png"):
    assert (d / f).exists(), f
  saved = json.loads((d / "results.json").read_text())
  assert saved["trainable_params_sha256"] == res["trainable_params_sha256"] and len(res["trainable_params_sha256"]) == 64
  assert 0 < saved["trainable_params"] < saved["total_params"] and saved["step"] == 6
  assert {"accuracy", "loss"} <= set(saved["test"]) and "fresh" not in saved["test"]
  assert "precision" in (d / "classification_report.txt").read_text()
  rows = [json.loads(l) for l in (d / "metrics.jsonl").read_text().splitlines()]
  assert [r["step"] for r in rows if r["split"] == "train"] == [2, 4, 6]
  assert [r["step"] for r in rows if r["split"] == "eval"] == [3, 6]
  assert json.loads((d / "config.json").read_text())["total_steps"] == 6
  # PEFT checkpoint: only the trainable head (+ its Adam moments), not the 1M frozen parameters.
  ckpt_bytes = sum(f.stat().st_size for f in (d / "checkpoints" / "6").rglob("*") if f.is_file())
  assert ckpt_bytes < 4 * saved["total_params"] / 10
  meta = json.loads(next((d / "checkpoints" / "6" / "meta").glob("*")).read_text())
  assert meta["base_model"] == "tiny-bert" and meta["peft"] == {"method": "head"}
  # resuming a finished run trains nothing and gives the same parameters
  again = train(cfg, d)
  assert again["trainable_params_sha256"] == res["trainable_params_sha256"]
  rows2 = [json.loads(l) for l in (d / "metrics.jsonl").read_text().splitlines()]
  assert [r["step"] for r in rows2 if r["split"] == "train"] == [2, 4, 6]
  # an interrupted run (3 steps, then continued to 6) matches the uninterrupted one bit for bit
  short = make_config(data, peft={"method": "head"}, checkpoint_every=3, eval_every=3, log_every=2,
                      total_steps=3)
  train(short, tmp_path / "b")
  resumed = train(cfg, tmp_path / "b")
  assert resumed["trainable_params_sha256"] == res["trainable_params_sha256"]


def test_nan_loss_stops_naming_the_step_and_keeps_last_good_checkpoint(data, tmp_path):
  cfg = make_config(data, checkpoint_every=1)
  cfg.optimizer.lr = float("nan")
  with pytest.raises(TrainingDiverged, match="at step 2.*step 1"):
    train(cfg, tmp_path / "nan")
  assert (tmp_path / "nan" / "checkpoints" / "1").exists()
  assert not (tmp_path / "nan" / "checkpoints" / "2").exists()
