"""Trainer conveniences: epochs instead of steps, evaluation before training, early stopping (kept on resume),
a classification report at every evaluation."""

import json

from lightft_jax.train.loop import train
from test_train_loop import make_config, write_data


def rows(d, split):
  return [r for r in map(json.loads, (d / "metrics.jsonl").read_text().splitlines()) if r["split"] == split]


def test_epochs_eval_at_start_and_reports(tmp_path):
  data = write_data(tmp_path / "data")  # 64 training examples, batch 8: 8 steps per epoch
  cfg = make_config(data, peft={"method": "head"}, epochs=1.5, eval_every=4, log_every=4,
                    **{"eval.at_start": True, "task.eval_limit": 8})
  res = train(cfg, tmp_path / "run")
  assert res["step"] == 12 and json.loads((tmp_path / "run" / "config.json").read_text())["total_steps"] == 12
  assert [r["step"] for r in rows(tmp_path / "run", "eval")] == [0, 4, 8, 12]
  assert res["eval_at_start"]["examples"] == 8 and "accuracy" in res["eval_at_start"]
  reports = sorted(p.name for p in (tmp_path / "run" / "reports").iterdir())
  assert reports == ["eval_step_0.txt", "eval_step_4.txt", "eval_step_8.txt"]
  assert "precision" in (tmp_path / "run" / "reports" / "eval_step_4.txt").read_text()


def test_early_stopping_stops_and_stays_stopped_on_resume(tmp_path):
  data = write_data(tmp_path / "data")
  # lr 0: the eval metric never improves after the first evaluation
  cfg = make_config(data, peft={"method": "head"}, eval_every=1, log_every=1, checkpoint_every=1,
                    **{"optimizer.lr": 0.0, "eval.patience": 2, "task.eval_limit": 8})
  res = train(cfg, tmp_path / "run")
  assert res["status"] == "early_stopped" and res["step"] == 3 and "test" in res
  assert [r["step"] for r in rows(tmp_path / "run", "eval")] == [1, 2, 3, 3]  # 3 periodic + the final one
  again = train(cfg, tmp_path / "run")  # the same command again: no further steps
  assert again["status"] == "early_stopped" and again["step"] == 3
  assert again["trainable_params_sha256"] == res["trainable_params_sha256"]
