"""Faults through the real command line: SIGKILL mid-run then the same command again gives the same
parameters as an uninterrupted run; SIGTERM saves a checkpoint and exits cleanly. Slow (several processes)."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from test_train_loop import write_data

ROOT = Path(__file__).parent.parent
pytestmark = pytest.mark.slow


def command(data, workdir):
  return [sys.executable, "-m", "lightft_jax.main", f"--config=configs/jsonl_classifier.py:data={data},steps=40",
          f"--workdir={workdir}", "--config.checkpoint_every=5", "--config.schedule.name=constant"]


def env():
  return {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=2", "JAX_PLATFORMS": "cpu",
          "PYTHONPATH": str(ROOT)}


def start_and_signal(cmd, workdir: Path, sig) -> subprocess.Popen:
  """Starts `cmd` and sends `sig` once a checkpoint beyond step 5 exists."""
  proc = subprocess.Popen(cmd, cwd=ROOT, env=env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
  deadline = time.time() + 600
  while time.time() < deadline and proc.poll() is None:
    steps = [int(p.name) for p in (workdir / "checkpoints").glob("*") if p.name.isdigit()]
    if any(s >= 10 for s in steps):
      proc.send_signal(sig)
      break
    time.sleep(0.2)
  proc.wait(timeout=600)
  return proc


def test_sigkill_then_rerun_matches_uninterrupted_and_sigterm_exits_cleanly(tmp_path):
  data = write_data(tmp_path / "data")
  ref = subprocess.run(command(data, tmp_path / "ref"), cwd=ROOT, env=env(), capture_output=True, text=True)
  assert ref.returncode == 0, ref.stdout + ref.stderr
  want = json.loads((tmp_path / "ref" / "results.json").read_text())["trainable_params_sha256"]

  killed = start_and_signal(command(data, tmp_path / "k"), tmp_path / "k", signal.SIGKILL)
  assert killed.returncode == -signal.SIGKILL
  assert not (tmp_path / "k" / "results.json").exists()
  again = subprocess.run(command(data, tmp_path / "k"), cwd=ROOT, env=env(), capture_output=True, text=True)
  assert again.returncode == 0, again.stdout + again.stderr
  assert json.loads((tmp_path / "k" / "results.json").read_text())["trainable_params_sha256"] == want

  termed = start_and_signal(command(data, tmp_path / "t"), tmp_path / "t", signal.SIGTERM)
  out = termed.stdout.read().decode()
  assert termed.returncode == 0, out
  res = json.loads((tmp_path / "t" / "results.json").read_text())
  assert res["status"] == "preempted" and str(res["step"]) in [p.name for p in (tmp_path / "t" / "checkpoints").glob("*")]
  again = subprocess.run(command(data, tmp_path / "t"), cwd=ROOT, env=env(), capture_output=True, text=True)
  assert again.returncode == 0 and json.loads((tmp_path / "t" / "results.json").read_text())[
      "trainable_params_sha256"] == want
