"""End-to-end runs of train(): run directory contract, resume, non-finite steps, small PEFT checkpoints."""

import importlib.util
import json
import os
import random
import re
from pathlib import Path

import jax
import numpy as np
import orbax.checkpoint as ocp
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
  assert saved["device"].endswith(" x cpu") and saved["host"].endswith(f", {os.cpu_count()} cores")  # CPU model first
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
  assert meta["config"]["model.name"] == "tiny-bert" and meta["config"]["peft.method"] == "head"
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


def _checkpoint(directory: Path, step: int) -> dict:
  """The train state saved at `step` in `directory`, read back with the shapes it was written with."""
  ck = ocp.CheckpointManager(directory, item_names=("state", "loader", "meta"))
  meta = ck.item_metadata(step)["state"]
  target = jax.tree.map(lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype), meta)
  state = ck.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore(target)))["state"]
  ck.close()
  return state


def _all_finite(tree) -> bool:
  return all(np.isfinite(np.asarray(x)).all() for x in jax.tree.leaves(tree)
             if np.issubdtype(np.asarray(x).dtype, np.inexact))


# LoRA with lr=1e12: steps 1-3 train, then the loss stays finite while the gradient overflows (old behaviour:
# that NaN update was applied and saved, and named as "the last good checkpoint").
DIVERGING = {"peft": {"method": "lora", "r": 4, "targets": "qv"}, "optimizer.lr": 1e12, "checkpoint_every": 1,
             "checkpoint.max_to_keep": 20, "log_every": 1, "task.test_split": "", "logging.plots": False}


def test_nonfinite_update_is_never_applied_and_the_named_checkpoint_is_finite(data, tmp_path):
  cfg = make_config(data, **DIVERGING)
  with pytest.raises(TrainingDiverged) as e:
    train(cfg, tmp_path / "d")
  bad, named = map(int, re.search(r"step (\d+) is not finite.*last checkpoint is step (\d+)", str(e.value)).groups())
  assert named == bad - 1 >= 1
  ckpts = tmp_path / "d" / "checkpoints"
  assert sorted(int(p.name) for p in ckpts.iterdir() if p.name.isdigit())[-1] == named
  state = _checkpoint(ckpts, named)
  assert jax.tree.leaves(state["params"]) and _all_finite(state)  # params, optimizer state, everything
  res = json.loads((tmp_path / "d" / "results.json").read_text())
  assert res["status"] == "diverged" and res["step"] == bad and res["skipped_steps"] == [bad]
  rows = [json.loads(l) for l in (tmp_path / "d" / "metrics.jsonl").read_text().splitlines()]
  assert all(r["loss"] is not None and r["grad_norm"] is not None for r in rows)  # rows before the bad step


def test_skip_nonfinite_skips_bad_steps_then_stops(data, tmp_path):
  cfg = make_config(data, **DIVERGING, total_steps=10, **{"train.skip_nonfinite": 2})
  with pytest.raises(TrainingDiverged, match=r"stopped after 3 non-finite steps \(train.skip_nonfinite=2\)"):
    train(cfg, tmp_path / "s")
  res = json.loads((tmp_path / "s" / "results.json").read_text())
  first = res["skipped_steps"][0]
  assert res["status"] == "diverged" and res["skipped_steps"] == [first, first + 1, first + 2]
  # the run went on through the skipped steps (their checkpoints exist) and none of them changed the state
  ckpts = tmp_path / "s" / "checkpoints"
  before, after = _checkpoint(ckpts, first - 1), _checkpoint(ckpts, first + 1)
  assert _all_finite(after) and int(after["step"]) == first + 1
  for a, b in zip(jax.tree.leaves(before["params"]), jax.tree.leaves(after["params"])):
    np.testing.assert_array_equal(a, b)
  rows = {r["step"]: r for r in map(json.loads, (tmp_path / "s" / "metrics.jsonl").read_text().splitlines())}
  assert rows[first]["grad_norm"] is None and rows[first - 1]["grad_norm"] is not None
