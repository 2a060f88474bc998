"""launch.aggregate on run directories written here (known numbers), and its refusal of unfinished runs."""

import json
import math
import shutil
from pathlib import Path

import pytest

from launch import aggregate


def fake_run(d: Path, *, method: str, seed: int, acc: float, params: int, rate: float | None = None,
             r: int | None = None, status: str = "completed") -> Path:
  """A run directory as lightft_jax.main leaves it: config.json (nested), results.json, metrics.jsonl."""
  d.mkdir(parents=True)
  peft = {"method": method, **({"r": r} if r is not None else {})}
  (d / "config.json").write_text(json.dumps({"seed": seed, "batch_size": 8, "peft": peft,
                                             "wandb": {"name": d.name}}))
  (d / "results.json").write_text(json.dumps({
      "status": status, "step": 5, "trainable_params": params, "wall_time_s": 10.0, "host": "Test CPU, 2 cores",
      "eval": {"loss": 0.5, "examples": 20, "accuracy": acc - 0.1}, "test": {"loss": 0.4, "examples": 20, "accuracy": acc}}))
  rows = [{"step": 1, "split": "train", "loss": 0.7, "time_to_first_step_s": 3.0}]
  rows += [{"step": s, "split": "train", "loss": 0.7 - 0.05 * s, **({"examples_per_s": rate} if rate else {})}
           for s in (2, 5)]
  (d / "metrics.jsonl").write_text("".join(json.dumps(x) + "\n" for x in rows))
  return d


@pytest.fixture
def sweep_dir(tmp_path):
  root = tmp_path / "sweep"
  fake_run(root / "lora_s0", method="lora", r=4, seed=0, acc=0.8, params=1000, rate=40.0)
  fake_run(root / "lora_s1", method="lora", r=4, seed=1, acc=0.9, params=1000, rate=40.0)
  fake_run(root / "ia3_s0", method="ia3", seed=0, acc=0.6, params=100)
  fake_run(root / "ia3_s1", method="ia3", seed=1, acc=0.7, params=100)
  (root / "_launch").mkdir()  # not a run: ignored
  return root


def test_rows_mean_std_params_and_step_time(sweep_dir, tmp_path):
  out = tmp_path / "out"
  assert aggregate.main([str(sweep_dir / "*"), "--group-by=peft.method,peft.r", f"--out={out}"]) == 0
  summary = json.loads((out / "summary.json").read_text())
  assert set(summary) == {"rows", "command", "device", "versions"}
  assert summary["command"].startswith("python -m launch.aggregate ") and "jax" in summary["versions"]
  ia3, lora = summary["rows"]
  assert (lora["peft.method"], lora["peft.r"], lora["n_seeds"]) == ("lora", 4, 2)
  assert (ia3["peft.method"], ia3["peft.r"], ia3["n_seeds"]) == ("ia3", None, 2)
  assert lora["test/accuracy_mean"] == pytest.approx(0.85)
  assert lora["test/accuracy_std"] == pytest.approx(math.sqrt(0.005))  # sample std of 0.8, 0.9
  # each run's own numbers stay in the row, with its seed
  assert sorted(r["test/accuracy"] for r in lora["per_run"]) == pytest.approx([0.8, 0.9])
  assert {r["seed"] for r in lora["per_run"]} == {r["seed"] for r in ia3["per_run"]} and len(lora["per_run"]) == 2
  assert sorted(r["run"] for r in lora["per_run"]) == sorted(lora["runs"])
  assert {r["host"] for r in lora["per_run"]} == {"Test CPU, 2 cores"}  # the CPU each run ran on
  assert lora["eval/accuracy_mean"] == pytest.approx(0.75) and "test/examples_mean" not in lora
  assert lora["trainable_params"] == 1000 and ia3["trainable_params"] == 100
  assert lora["ms_per_step"] == pytest.approx(1000 * 8 / 40.0) and lora["ms_per_step_from"] == "examples_per_s"
  assert ia3["ms_per_step"] == pytest.approx(1000 * 10.0 / 5) and ia3["ms_per_step_from"] == "wall_time"
  md = (out / "summary.md").read_text()
  assert md.startswith("| peft.method | peft.r | n_seeds | test/loss | test/accuracy |") and "0.85 ± 0.071" in md
  for png in ("metric_vs_params.png", "learning_curves.png"):
    assert (out / png).read_bytes()[:4] == b"\x89PNG"


def test_markdown_cells_stay_on_one_line():
  """A group value with a newline or a pipe (e.g. task.answer_prefix "\\nAnswer:") keeps the table one row per line."""
  assert aggregate._fmt("\nAnswer:") == "\\nAnswer:" and aggregate._fmt("a|b") == "a\\|b"
  assert aggregate._fmt(None) == "-" and aggregate._fmt(0.123456) == "0.1235" and aggregate._fmt(3) == "3"


def test_default_groups_are_the_varying_keys_without_seed(sweep_dir, tmp_path):
  summary = aggregate.aggregate([str(sweep_dir)], tmp_path)
  assert [(r["peft.method"], r["peft.r"], r["n_seeds"]) for r in summary["rows"]] == [("ia3", None, 2), ("lora", 4, 2)]
  assert not any("seed" in k for k in summary["rows"][0] if k != "n_seeds")
  one = aggregate.aggregate([str(sweep_dir)], tmp_path / "one", group_by=[])
  assert len(one["rows"]) == 1 and one["rows"][0]["n_seeds"] == 4
  assert one["rows"][0]["test/accuracy_std"] is not None


def test_numeric_group_values_sort_as_numbers(tmp_path):
  for r in (16, 2, 128):
    fake_run(tmp_path / "sweep" / f"r{r}", method="lora", r=r, seed=0, acc=0.8, params=r)
  fake_run(tmp_path / "sweep" / "ia3", method="ia3", seed=0, acc=0.8, params=1)
  rows = aggregate.aggregate([str(tmp_path / "sweep")], tmp_path / "out", group_by=["peft.r"])["rows"]
  assert [r["peft.r"] for r in rows] == [2, 16, 128, None]


def test_unfinished_runs_are_named(sweep_dir, tmp_path):
  fake_run(sweep_dir / "stopped", method="lora", r=8, seed=0, acc=0.5, params=2000, status="preempted")
  (sweep_dir / "crashed").mkdir()
  (sweep_dir / "crashed" / "config.json").write_text("{}")
  with pytest.raises(SystemExit, match="not finished") as e:
    aggregate.aggregate([str(sweep_dir)], tmp_path / "out")
  assert "stopped: preempted" in str(e.value) and "crashed: no results.json" in str(e.value)
  assert "lora_s0" not in str(e.value) and not (tmp_path / "out").exists()


def test_misspelled_group_key_and_empty_input_fail(sweep_dir, tmp_path):
  with pytest.raises(SystemExit, match="peft.rank"):
    aggregate.aggregate([str(sweep_dir)], tmp_path, group_by=["peft.rank"])
  with pytest.raises(SystemExit, match="no run directories"):
    aggregate.aggregate([str(tmp_path / "nothing*")], tmp_path)


def test_an_earlier_summary_stands_for_runs_whose_directories_are_gone(sweep_dir, tmp_path):
  group_by = ["peft.method", "peft.r"]
  whole = aggregate.aggregate([str(sweep_dir)], tmp_path / "whole", group_by=group_by)
  aggregate.aggregate([str(sweep_dir / "lora_s0"), str(sweep_dir / "ia3_s0")], tmp_path / "part",
                      group_by=group_by)
  shutil.rmtree(sweep_dir / "lora_s0")  # seed 0's directories are gone; their numbers live in part/summary.json
  shutil.rmtree(sweep_dir / "ia3_s0")
  fake_run(sweep_dir / "ia3_s0", method="ia3", seed=0, acc=0.6, params=100)  # one is back: read from it
  merged = aggregate.aggregate([str(tmp_path / "part" / "summary.json"), str(sweep_dir)], tmp_path / "merged",
                               group_by=group_by)
  drop = ("runs", "per_run")
  assert [{k: v for k, v in r.items() if k not in drop} for r in merged["rows"]] == \
      [{k: v for k, v in r.items() if k not in drop} for r in whole["rows"]]
  assert sorted(merged["rows"][1]["runs"]) == sorted(whole["rows"][1]["runs"])
  curves = {x["run"]: x["curve"] for r in merged["rows"] for x in r["per_run"]}
  kept = [v for point in curves[str(sweep_dir / "lora_s0")] for v in point]  # the recorded curve
  assert kept == pytest.approx([1, 0.7, 2, 0.6, 5, 0.45])
  assert [x["run"] for x in merged["rows"][0]["per_run"]].count(str(sweep_dir / "ia3_s0")) == 1
  with pytest.raises(SystemExit, match="--group-by"):
    aggregate.aggregate([str(tmp_path / "part" / "summary.json")], tmp_path / "x")
  with pytest.raises(SystemExit, match=r"cannot be grouped by \['optimizer.lr'\]"):
    aggregate.aggregate([str(tmp_path / "part" / "summary.json")], tmp_path / "x", group_by=["optimizer.lr"])


def test_a_summary_from_before_per_run_stands_for_its_single_run_rows(sweep_dir, tmp_path):
  group_by = ["peft.method", "peft.r"]
  whole = aggregate.aggregate([str(sweep_dir)], tmp_path / "whole", group_by=group_by)
  aggregate.aggregate([str(sweep_dir / "lora_s0"), str(sweep_dir / "ia3_s0")], tmp_path / "old", group_by=group_by)
  path = tmp_path / "old" / "summary.json"
  old = json.loads(path.read_text())
  for row in old["rows"]:  # as summaries were written before they recorded per_run
    del row["per_run"]
  path.write_text(json.dumps(old))
  shutil.rmtree(sweep_dir / "lora_s0")
  shutil.rmtree(sweep_dir / "ia3_s0")
  merged = aggregate.aggregate([str(path), str(sweep_dir)], tmp_path / "merged", group_by=group_by)
  for m, w in zip(merged["rows"], whole["rows"]):
    assert m["n_seeds"] == 2 and m["test/accuracy_mean"] == pytest.approx(w["test/accuracy_mean"])
    assert m["test/accuracy_std"] == pytest.approx(w["test/accuracy_std"])
    assert m["ms_per_step"] == pytest.approx(w["ms_per_step"])
    assert sorted(x["seed"] for x in m["per_run"] if x["seed"] is not None) == [1]  # the old run's seed is unknown
  old["rows"][0]["n_seeds"], old["rows"][0]["runs"] = 2, ["a", "b"]
  path.write_text(json.dumps(old))
  with pytest.raises(SystemExit, match="cannot be split"):
    aggregate.aggregate([str(path)], tmp_path / "x", group_by=group_by)


def test_plot_labels_name_only_the_keys_that_vary():
  groups = [{"peft.method": "lora", "peft.r": 8, "peft.targets": "q" * 40, "optimizer.lr": 2e-3},
            {"peft.method": "lora", "peft.r": 16, "peft.targets": "v", "optimizer.lr": 2e-3},
            {"peft.method": "full", "peft.r": None, "peft.targets": "v", "optimizer.lr": 2e-3}]
  labels = aggregate.short_labels(groups, ["peft.method", "peft.r", "peft.targets", "optimizer.lr"], width=10)
  assert labels == ["method=lora, r=8, targets=qqqqqqq...", "method=lora, r=16, targets=v", "method=full, targets=v"]
  assert aggregate.short_labels(groups[:1], ["peft.method"]) == ["runs"]  # nothing varies


def test_point_labels_do_not_overlap():
  import matplotlib.pyplot as plt
  fig, ax = plt.subplots(figsize=(4, 3))
  points = [(f"label {i}", 1e5 * (1 + 0.01 * i), 0.8 + 0.0005 * i) for i in range(5)]  # all on one spot
  ax.plot([p[1] for p in points], [p[2] for p in points], "o")
  aggregate.place_labels(ax, points)
  renderer = fig.canvas.get_renderer()
  boxes = [t.get_window_extent(renderer) for t in ax.texts]
  assert len(boxes) == 5
  assert not any(a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1:])
  plt.close(fig)
