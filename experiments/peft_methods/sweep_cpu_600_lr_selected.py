"""peft_methods at 600 steps: 3 seeds (seed 0 first) of each method of sweep_cpu_600_lr.py at the body learning rate
the whole validation split chose (results/cpu_600_lr/summary.json), where that is not the table's own rate, with
everything else as the table's point (the test split read once, at the end; validation on the first 256):

  python -m launch.launchers experiments/peft_methods/sweep_cpu_600_lr_selected.py
"""

import json
from pathlib import Path

from launch.sweep import load_file

HERE = Path(__file__).parent
_paper = load_file(HERE / "sweep.py", "_peft_methods_sweep")
_tune = load_file(HERE / "sweep_cpu_600_lr.py", "_peft_methods_600_lr")


def chosen(method: str, rows: list[dict]) -> float:
  """The rate with the highest validation accuracy among `method`'s rows."""
  return max((r for r in rows if r["peft.method"] == method), key=lambda r: r["eval/accuracy_mean"])["optimizer.lr"]


def get_sweep():
  rows = json.loads((HERE / "results" / "cpu_600_lr" / "summary.json").read_text())["rows"]
  points = []
  for label, table_lr, _ in _tune.RATES:
    lr = chosen(_paper.point(label)["arg"].split(",")[0].removeprefix("method="), rows)
    if lr != table_lr:
      points.append(_paper.point(label, lr))
  if not points:
    raise SystemExit("validation chose every table rate: the table's runs are these")
  return {"config": _paper.config(), "workdir": "runs/peft_methods_cpu_600_lr_selected", "grid": {"seed": [0, 1, 2]},
          "list": points}
