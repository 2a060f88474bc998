"""Resuming checks the config: keys that define the trained state must match the checkpoint's, the rest may change."""

import json
import logging

import pytest

from lightft_jax.train import config_lib
from lightft_jax.train.checkpoint import ResumeMismatch, check_resume, state_config
from lightft_jax.train.loop import train
from test_train_loop import make_config, write_data

SAFE = {"total_steps": 500, "log_every": 7, "eval_every": 3, "checkpoint_every": 9, "wandb.mode": "online",
        "logging.progress": True, "checkpoint.max_to_keep": 9, "checkpoint.async_save": True,
        "eval.batch_size": 4, "task.eval_limit": 10, "mesh.data": 2, "train.skip_nonfinite": 3}
STATE = {"seed": 1, "batch_size": 4, "peft": {"method": "lora", "r": 2}, "model.overrides.d_model": 64,
         "optimizer.lr": 1.0, "schedule.warmup_steps": 1, "task.name": "other", "model.max_length": 16,
         "task.options.path.train": "elsewhere.jsonl", "optimizer.lr_groups": ((r"^head\.", 10.0),)}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
  return write_data(tmp_path_factory.mktemp("data"))


def _meta(cfg, step=3):
  return json.loads(json.dumps({"step": step, "total_steps": cfg.total_steps, "config": state_config(cfg)}))


@pytest.mark.parametrize("key", sorted(SAFE))
def test_safe_keys_may_change(data, key):
  cfg = make_config(data)
  meta = _meta(cfg)
  config_lib.set_key(cfg, key, SAFE[key])
  check_resume(meta, cfg)


@pytest.mark.parametrize("key", sorted(STATE))
def test_state_keys_may_not_change_and_are_named(data, key):
  cfg = make_config(data)
  meta = _meta(cfg)
  config_lib.set_key(cfg, key, STATE[key])
  with pytest.raises(ResumeMismatch) as e:
    check_resume(meta, cfg)
  name = key if key != "peft" else "peft.method"
  assert f"\n  {name}: " in str(e.value)


def test_mismatch_lists_every_changed_key_old_and_new(data):
  cfg = make_config(data)
  meta = _meta(cfg)
  cfg.seed, cfg.batch_size, cfg.log_every = 5, 2, 1
  with pytest.raises(ResumeMismatch) as e:
    check_resume(meta, cfg)
  lines = str(e.value).splitlines()[1:-1]
  assert lines == ["  batch_size: 8 -> 2", "  seed: 0 -> 5"]


def test_checkpoint_without_recorded_config_resumes_with_a_warning(data, caplog):
  with caplog.at_level(logging.WARNING):
    check_resume({"step": 4}, make_config(data))
  assert "no recorded config" in caplog.text


def test_resume_refuses_a_changed_run_and_accepts_a_longer_one(data, tmp_path, caplog):
  base = {"peft": {"method": "head"}, "schedule.name": "cosine", "task.test_split": "", "task.eval_split": "",
          "logging.plots": False, "total_steps": 3}
  train(make_config(data, **base), tmp_path)
  for key, value, shown in (("seed", 1, "seed: 0 -> 1"), ("batch_size", 4, "batch_size: 8 -> 4"),
                            ("peft", {"method": "bitfit"}, 'peft.method: "head" -> "bitfit"')):
    with pytest.raises(ResumeMismatch, match=shown):
      train(make_config(data, **{**base, key: value}), tmp_path)
  assert not (tmp_path / "checkpoints" / "4").exists()  # nothing trained by the refused attempts
  written = json.loads((tmp_path / "config.json").read_text())
  assert (written["seed"], written["batch_size"], written["peft"]) == (0, 8, {"method": "head"})
  with caplog.at_level(logging.WARNING):
    res = train(make_config(data, **{**base, "total_steps": 5, "log_every": 1}), tmp_path)
  assert res["status"] == "completed" and res["step"] == 5
  assert "total_steps changed from 3 to 5" in caplog.text and "cosine" in caplog.text
  rows = [json.loads(l) for l in (tmp_path / "metrics.jsonl").read_text().splitlines()]
  assert [r["step"] for r in rows if r["split"] == "train"] == [3, 4, 5]  # resumed after step 3, not from 0
