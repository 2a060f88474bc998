"""An ICL run directory (the `icl_eval` job) is marked finished like a training run's: `launch` skips the point and
`launch.aggregate` reads it."""

import json
import shlex
import stat
import sys
from pathlib import Path

from launch import aggregate, launchers
from launch.sweep import expand, load_sweep, run_status
from lightft_jax.icl import run_icl_eval
from lightft_jax.models.assets import minilm_dir
from lightft_jax.train import config_lib

ROOT = Path(__file__).parent.parent


def write_jsonl(path: Path, n: int, seed: int) -> None:
  import random
  r = random.Random(seed)
  words = "good bad great awful fine dull".split()
  path.write_text("".join(json.dumps({"text": " ".join(r.choice(words) for _ in range(3)), "label": r.randint(0, 1)})
                          + "\n" for _ in range(n)))


def stub_python(bin_dir: Path, log: Path) -> Path:
  """An executable that appends its argv (JSON) to `log` and succeeds: what the local backend would have run."""
  bin_dir.mkdir()
  exe = bin_dir / "python"
  exe.write_text(f"#!{sys.executable}\nimport json, sys\nopen({str(log)!r}, 'a').write(json.dumps(sys.argv) + '\\n')\n")
  exe.chmod(exe.stat().st_mode | stat.S_IEXEC)
  return exe


def tiny_icl_config(data: Path, arg: str):
  c = config_lib.load_config(f"{ROOT / 'configs' / 'icl_eval.py'}:{arg}")
  c.model.tokenizer = str(minilm_dir())
  c.model.overrides = {"d_model": 32, "n_layers": 1}
  c.task.options = {"path": {"train": str(data / "train.jsonl"), "test": str(data / "test.jsonl")},
                    "label_names": ["negative", "positive"]}
  return c


def test_finished_icl_point_is_skipped_by_the_local_backend_and_aggregated(tmp_path, capsys):
  data = tmp_path / "data"
  data.mkdir()
  write_jsonl(data / "train.jsonl", 10, 0)
  write_jsonl(data / "test.jsonl", 4, 1)
  arg = "task=jsonl,k=0+2,model=tiny-gpt2,limit=4"
  sweep = tmp_path / "s.py"
  sweep.write_text("def get_sweep():\n  return " + repr({"config": f"configs/icl_eval.py:{arg}",
                                                        "workdir": str(tmp_path / "runs"), "grid": {"seed": [0, 1]}}))
  points = expand(load_sweep(sweep))
  run_icl_eval(tiny_icl_config(data, arg), points[0].workdir)  # point 0 ran to its end
  assert run_status(points[0].workdir) == "completed"
  log = tmp_path / "calls.jsonl"
  exe = stub_python(tmp_path / "bin", log)
  assert launchers.main([str(sweep), f"--python={exe}"]) == 0
  ran = [json.loads(line)[1:] for line in log.read_text().splitlines()]
  assert ran == [shlex.split(points[1].command)[1:]]  # only the unfinished point ran
  assert f"skipped (completed): {points[0].workdir}" in capsys.readouterr().err
  run = aggregate.load_run(Path(points[0].workdir))
  assert run["trainable_params"] == 0
  assert {"test/k0/acc", "test/k2/acc_calibrated"} <= run["metrics"].keys()
  assert 0.0 <= run["metrics"]["test/k2/acc"] <= 1.0
