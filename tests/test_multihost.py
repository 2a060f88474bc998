"""Two CPU processes on localhost (jax.distributed, one device each) train exactly like one process with
two devices: same losses and the same final parameter digest; only process 0 writes the run directory.
Run by `pytest -m faults` (a second pytest call in .ci/run)."""

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from test_train_faults import env
from test_train_loop import write_data

ROOT = Path(__file__).parent.parent
pytestmark = pytest.mark.faults


def free_port() -> int:
  with socket.socket() as s:
    s.bind(("localhost", 0))
    return s.getsockname()[1]


def cmd(data, workdir, extra=()):
  return [sys.executable, "-m", "lightft_jax.main", f"--config=configs/jsonl_classifier.py:data={data},steps=6",
          f"--workdir={workdir}", "--config.log_every=1", "--config.schedule.name=constant",
          "--config.logging.plots=False", *extra]




def losses(workdir: Path):
  rows = [json.loads(l) for l in (workdir / "metrics.jsonl").read_text().splitlines()]
  return [r["loss"] for r in rows if r["split"] == "train"]


def test_two_processes_match_one_process(tmp_path):
  data = write_data(tmp_path / "data")
  one = subprocess.run(cmd(data, tmp_path / "one"), cwd=ROOT, env=env(2), capture_output=True, text=True)
  assert one.returncode == 0, one.stderr[-3000:]
  port = free_port()
  procs = [subprocess.Popen(cmd(data, tmp_path / "two", [f"--config.distributed.coordinator_address=localhost:{port}",
                                                          "--config.distributed.num_processes=2",
                                                          f"--config.distributed.process_id={i}"]),
                            cwd=ROOT, env=env(1), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
           for i in range(2)]
  outs = [p.communicate(timeout=300)[0] for p in procs]
  assert all(p.returncode == 0 for p in procs), outs[0][-3000:] + outs[1][-3000:]
  assert losses(tmp_path / "two") == pytest.approx(losses(tmp_path / "one"), abs=1e-6)
  a = json.loads((tmp_path / "one" / "results.json").read_text())
  b = json.loads((tmp_path / "two" / "results.json").read_text())
  assert a["trainable_params_sha256"] == b["trainable_params_sha256"]
  assert "final train loss" in outs[0] and "final train loss" not in outs[1]  # only process 0 reports
