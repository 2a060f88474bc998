"""peft_methods at 600 steps: 3 seeds (seed 0 first) of each method of sweep_cpu_600_lr.py at the body learning rate
the whole validation split chose (results/cpu_600_lr/summary.json), where that is not the table's own rate, with
everything else as the table's point (the test split read once, at the end; validation on the first 256):

  python -m launch.launchers experiments/peft_methods/sweep_cpu_600_lr_selected.py
"""

import json
from pathlib import Path

from experiments.peft_methods.table import chosen, quickstart_lr
from launch.sweep import load_file

HERE = Path(__file__).parent
_paper = load_file(HERE / "sweep.py", "_peft_methods_sweep")
_tune = load_file(HERE / "sweep_cpu_600_lr.py", "_peft_methods_600_lr")


def get_sweep():
  tune = json.loads((HERE / "results" / "cpu_600_lr" / "summary.json").read_text())
  points = [_paper.point(label, lr) for label, method, _ in _tune.RATES
            if (lr := chosen(tune, label)["optimizer.lr"]) != quickstart_lr(method)]
  if not points:
    raise SystemExit("validation chose every table rate: the table's runs are these")
  return {"config": _paper.config(), "workdir": "runs/peft_methods_cpu_600_lr_selected", "grid": {"seed": [0, 1, 2]},
          "list": points}
