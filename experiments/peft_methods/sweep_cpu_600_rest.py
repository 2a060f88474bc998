"""peft_methods at the PyTorch reference's budget (600 steps, batch 32, max length 64), seed 0, for the thirteen
methods sweep_cpu_reference.py leaves out (everything else as sweep.py), so that every method of the table has a
600-step row (seeds 1 and 2: sweep_cpu_600_rest_seeds.py). Aggregated with the other 600-step sweeps by run.sh:

  python -m launch.launchers experiments/peft_methods/sweep_cpu_600_rest.py
"""

from pathlib import Path

from launch.sweep import load_file

_paper = load_file(Path(__file__).with_name("sweep.py"), "_peft_methods_sweep")
_reference = load_file(Path(__file__).with_name("sweep_cpu_reference.py"), "_peft_methods_reference")


# Run order: reparameterised prefix tuning last (at 100 steps it did not learn at this learning rate).
LAST = ("prefix (reparameterised)",)


def get_sweep():
  sweep = _paper.sweep(_paper.STEPS, (0,), "runs/peft_methods_cpu_600_rest")
  points = [(label, point) for (label, _, _), point in zip(_paper.METHODS, sweep["list"])
            if label not in _reference.REFERENCE]
  sweep["list"] = [point for label, point in sorted(points, key=lambda x: x[0] in LAST)]
  return sweep
