"""peft_methods at 600 steps: reparameterised prefix tuning at the learning rate validation chose, 3 seeds (seed 0
first), everything else as sweep_cpu_600_rest.py. The rate is the one with the highest validation accuracy in
results/cpu_600_prefix_lr/summary.json (sweep_cpu_600_prefix_lr.py's candidates beside the table's 2e-3):

  python -m launch.launchers experiments/peft_methods/sweep_cpu_600_prefix_selected.py
"""

import json
from pathlib import Path

from experiments.peft_methods.table import chosen
from launch.sweep import load_file

HERE = Path(__file__).parent
_tune = load_file(HERE / "sweep_cpu_600_prefix_lr.py", "_peft_methods_600_prefix_lr")


def selected_lr() -> float:
  return chosen(json.loads((HERE / "results" / "cpu_600_prefix_lr" / "summary.json").read_text()))["optimizer.lr"]


def get_sweep():
  tune = _tune.get_sweep()
  (point,) = tune["list"]
  point = {k: v for k, v in point.items() if k != "task.test_split"}  # the test split is read for the table
  return {"config": tune["config"], "workdir": "runs/peft_methods_cpu_600_prefix_selected",
          "grid": {"seed": [0, 1, 2]}, "list": [{**point, "optimizer.lr": selected_lr()}]}
