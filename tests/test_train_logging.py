"""Run logging: throughput that excludes the first (compiling) step, MFU, and a real offline W&B run."""

import json
from pathlib import Path

import pytest

from lightft_jax.train import logger as lg
from lightft_jax.train.loop import train
from test_train_loop import make_config, write_data


def wandb_records(path):
  """Records of a .wandb file (LevelDB-style log: 7-byte W&B header, 32 KiB blocks, 7-byte chunk headers)."""
  from wandb.proto import wandb_internal_pb2 as pb
  data = path.read_bytes()
  assert data[:4] == b":W&B", data[:7]
  pos, buf, out = 7, b"", []
  while pos + 7 <= len(data):
    room = 32768 - pos % 32768
    if room < 7:
      pos += room
      continue
    length, kind = int.from_bytes(data[pos + 4:pos + 6], "little"), data[pos + 6]
    if kind == 0 and length == 0:
      pos += room
      continue
    buf += data[pos + 7:pos + 7 + length]
    pos += 7 + length
    if kind in (1, 4):  # full or last chunk
      r = pb.Record()
      r.ParseFromString(buf)
      out.append(r)
      buf = b""
  return out


def wandb_config_and_summary(path: Path) -> tuple[dict, dict]:
  """The run's config and final summary, replayed from the records of its .wandb file."""
  config, summary = {}, {}
  for r in wandb_records(path):
    kind = r.WhichOneof("record_type")
    items = r.run.config.update if kind == "run" else r.config.update if kind == "config" else \
        r.summary.update if kind == "summary" else []
    for it in items:
      key = it.key or "/".join(it.nested_key)
      (summary if kind == "summary" else config)[key] = json.loads(it.value_json)
  return config, summary


def test_throughput_excludes_the_first_step():
  t = lg.Throughput(flops_per_token=6.0, peak_flops=600.0, now=100.0)
  first = t.update(tokens=1000, examples=10, now=130.0)  # a 30 s step: compilation
  assert first == {"time_to_first_step_s": 30.0}
  t.update(tokens=50, examples=2, now=131.0)
  rates = t.update(tokens=150, examples=6, now=132.0)
  assert rates["tokens_per_s"] == pytest.approx(100.0)  # (50 + 150) / 2 s; the first step's 1000 not counted
  assert rates["examples_per_s"] == pytest.approx(4.0)
  assert rates["mfu"] == pytest.approx(100.0 * 6.0 / 600.0)
  no_peak = lg.Throughput(flops_per_token=6.0, peak_flops=None, now=0.0)
  no_peak.update(1, 1, 1.0)
  assert "mfu" not in no_peak.update(1, 1, 2.0)


def test_peak_and_flops_estimates():
  assert lg.peak_tflops(None, "NVIDIA H100 80GB HBM3") == 989.0
  assert lg.peak_tflops(None, "NVIDIA A100-SXM4-40GB") == 312.0
  assert lg.peak_tflops(None, "cpu") is None
  assert lg.peak_tflops(123.0, "cpu") == 123.0
  assert lg.flops_per_token(10, 10) == 60.0  # full fine-tuning: 6N
  assert lg.flops_per_token(10, 0) == 40.0  # frozen: no weight gradients


@pytest.fixture(scope="module")
def offline_run(tmp_path_factory, monkeypatch_module):
  tmp = tmp_path_factory.mktemp("wandb_run")
  monkeypatch_module.setenv("WANDB_DIR", str(tmp / "wandb_dir"))
  monkeypatch_module.setenv("WANDB_MODE", "offline")
  cfg = make_config(write_data(tmp / "data"), log_every=1, **{"wandb.mode": "offline",
                                                               "wandb.project": "lightft_test",
                                                               "logging.peak_tflops": 1.0,
                                                               "logging.plots": False, "task.test_split": ""})
  cfg.total_steps = 3
  res = train(cfg, tmp / "run")
  return tmp / "run", res


@pytest.fixture(scope="module")
def monkeypatch_module():
  with pytest.MonkeyPatch.context() as mp:
    yield mp


def test_metrics_jsonl_has_throughput_keys(offline_run):
  run, _ = offline_run
  rows = [json.loads(l) for l in (run / "metrics.jsonl").read_text().splitlines()]
  train_rows = [r for r in rows if r["split"] == "train"]
  assert [r["step"] for r in train_rows] == [1, 2, 3]
  assert "time_to_first_step_s" in train_rows[0] and train_rows[0]["time_to_first_step_s"] > 0
  assert "tokens_per_s" not in train_rows[0]  # one step: nothing measured after compilation yet
  assert sum("time_to_first_step_s" in r for r in rows) == 1
  for r in train_rows[1:]:
    assert r["tokens_per_s"] > 0 and r["examples_per_s"] > 0 and 0 < r["mfu"]


def test_offline_wandb_run_holds_config_and_summary(offline_run):
  run, res = offline_run
  dirs = list(run.glob("wandb/offline-run-*"))
  assert len(dirs) == 1, list(run.rglob("*"))
  wandb_files = list(dirs[0].glob("*.wandb"))
  assert len(wandb_files) == 1
  config, summary = wandb_config_and_summary(wandb_files[0])
  assert config["total_steps"] == 3 and config["wandb"]["project"] == "lightft_test"
  assert summary["step"] == 3 and summary["train_loss"] == pytest.approx(res["train_loss"])
  assert summary["eval/accuracy"] == pytest.approx(res["eval"]["accuracy"])
  assert summary["status"] == "completed" and "train/tokens_per_s" in summary
  assert (run / "wandb_id.txt").read_text().strip() in dirs[0].name


def test_only_process_zero_logs(tmp_path):
  cfg = make_config(write_data(tmp_path / "data"), **{"wandb.mode": "offline"})
  other = lg.MetricLogger(tmp_path / "p1", cfg, enabled=False)  # what train() builds when not is_main()
  other.log(1, "train", {"loss": 1.0})
  other.summary({"step": 1})
  other.close()
  assert other.run is None and not (tmp_path / "p1").exists()
