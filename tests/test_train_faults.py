"""Faults through the real command line: SIGKILL mid-run, then SIGTERM in the resumed run (which saves a
checkpoint and exits cleanly), then the same command once more: the parameters equal an uninterrupted run's.
Run by `pytest -m faults` (a second pytest call in .ci/run)."""

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from test_train_loop import write_data

ROOT = Path(__file__).parent.parent
JAX_CACHE = Path(tempfile.gettempdir()) / f"lightft_jax_test_cache_{os.getuid()}"
pytestmark = pytest.mark.faults


def command(data, workdir):
  return [sys.executable, "-m", "lightft_jax.main", f"--config=configs/jsonl_classifier.py:data={data},steps=40",
          f"--workdir={workdir}", "--config.checkpoint_every=5", "--config.schedule.name=constant",
          "--config.logging.plots=False"]


def env(devices: int = 2):
  """Simulated CPU devices, and one persistent compilation cache for every run of the session (the runs
  compile the same programs; a cached executable is the one a fresh compile would give)."""
  return {**os.environ, "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}", "JAX_PLATFORMS": "cpu",
          "PYTHONPATH": str(ROOT), "JAX_COMPILATION_CACHE_DIR": str(JAX_CACHE),
          "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0", "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "0"}


def checkpoints(workdir: Path) -> list[int]:
  return sorted(int(p.name) for p in (workdir / "checkpoints").glob("*") if p.name.isdigit())


def start_and_signal(cmd, workdir: Path, sig, at_step: int) -> tuple[subprocess.Popen, str]:
  """Starts `cmd` and sends `sig` once a checkpoint at `at_step` or later exists; (process, its output)."""
  proc = subprocess.Popen(cmd, cwd=ROOT, env=env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
  deadline = time.time() + 300
  while time.time() < deadline and proc.poll() is None:
    if any(s >= at_step for s in checkpoints(workdir)):
      proc.send_signal(sig)
      break
    time.sleep(0.05)
  out = proc.communicate(timeout=300)[0]
  return proc, out


def test_sigkill_then_sigterm_then_rerun_matches_uninterrupted(tmp_path):
  data = write_data(tmp_path / "data")
  ref = subprocess.run(command(data, tmp_path / "ref"), cwd=ROOT, env=env(), capture_output=True, text=True)
  assert ref.returncode == 0, ref.stdout + ref.stderr
  want = json.loads((tmp_path / "ref" / "results.json").read_text())["trainable_params_sha256"]

  run = tmp_path / "run"
  killed, out = start_and_signal(command(data, run), run, signal.SIGKILL, 10)
  assert killed.returncode == -signal.SIGKILL, out
  assert not (run / "results.json").exists() and 10 <= checkpoints(run)[-1] < 40

  termed, out = start_and_signal(command(data, run), run, signal.SIGTERM, 20)  # resumes, then is preempted
  assert termed.returncode == 0, out
  res = json.loads((run / "results.json").read_text())
  assert res["status"] == "preempted" and 20 <= res["step"] < 40 and res["step"] in checkpoints(run)

  again = subprocess.run(command(data, run), cwd=ROOT, env=env(), capture_output=True, text=True)
  assert again.returncode == 0, again.stdout + again.stderr
  res = json.loads((run / "results.json").read_text())
  assert res["status"] == "completed" and res["step"] == 40 and res["trainable_params_sha256"] == want
