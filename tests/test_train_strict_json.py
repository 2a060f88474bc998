"""Results, metrics and comparison files are strict JSON: NaN never reaches them silently."""

import json
import math

import numpy as np
import pytest

from lightft_jax.train.compare import comparison_table
from lightft_jax.train.logger import MetricLogger
from lightft_jax.train.loop import TrainingDiverged, train, write_json
from test_train_loop import make_config, write_data


def strict_load(text: str):
  def reject(token):
    raise ValueError(f"non-standard JSON token {token}")
  return json.loads(text, parse_constant=reject)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_write_json_refuses_nonfinite_and_writes_nothing(tmp_path, bad):
  with pytest.raises(ValueError, match="not JSON compliant"):
    write_json(tmp_path / "results.json", {"test": {"loss": bad}})
  assert list(tmp_path.iterdir()) == []
  write_json(tmp_path / "results.json", {"test": {"loss": 0.5}})
  assert strict_load((tmp_path / "results.json").read_text()) == {"test": {"loss": 0.5}}


def test_write_json_does_not_stringify_what_json_cannot_hold(tmp_path):
  with pytest.raises(TypeError):  # e.g. a NumPy scalar (here a NaN) would otherwise become the string "nan"
    write_json(tmp_path / "results.json", {"loss": np.float32("nan")})
  assert list(tmp_path.iterdir()) == []


def test_metric_logger_refuses_nan(tmp_path):
  cfg = make_config(write_data(tmp_path / "data"))
  logger = MetricLogger(tmp_path, cfg)
  logger.log(1, "train", {"loss": 0.25})
  with pytest.raises(ValueError, match="not JSON compliant"):
    logger.log(2, "eval", {"loss": float("nan")})
  assert [strict_load(l) for l in (tmp_path / "metrics.jsonl").read_text().splitlines()] == [
      {"step": 1, "split": "train", "loss": 0.25}]


def test_comparison_table_shows_a_missing_metric():
  rows = [{"method": "head", "trainable_params": 10, "trainable_percent": 1.0, "test_metric": None,
           "wall_time_s": 3.0}]
  assert "| head | 10 (1.00%) | n/a | 3 |" in comparison_table(rows, "accuracy")


def test_diverged_run_records_null_loss_and_status(tmp_path):
  data = write_data(tmp_path / "data")
  cfg = make_config(data, **{"optimizer.lr": 1e12, "task.test_split": "", "logging.plots": False, "log_every": 1})
  with pytest.raises(TrainingDiverged):
    train(cfg, tmp_path / "run")
  res = strict_load((tmp_path / "run" / "results.json").read_text())
  assert res["status"] == "diverged" and res["train_loss"] is None and res["skipped_steps"] == [res["step"]]
  for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines():
    assert strict_load(line)["loss"] is not None
