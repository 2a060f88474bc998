"""peft_methods at the PyTorch reference's budget: seeds 1 and 2 of sweep_cpu_600_rest.py's methods (everything
else as there), so that every row of the 600-step table is read over 3 seeds. Reparameterised prefix tuning here is
its row at the other PEFT methods' 2e-3, where seed 0 predicts the majority class; its 3 seeds at the rate chosen on
validation are sweep_cpu_600_prefix_selected.py's. Seed 1 of every method runs before seed 2; aggregated by run.sh
with the other 600-step sweeps:

  python -m launch.launchers experiments/peft_methods/sweep_cpu_600_rest_seeds.py
"""

from pathlib import Path

from launch.sweep import load_file

_rest = load_file(Path(__file__).with_name("sweep_cpu_600_rest.py"), "_peft_methods_600_rest")


def get_sweep():
  sweep = _rest.get_sweep()
  return {**sweep, "grid": {"seed": [1, 2]}, "workdir": "runs/peft_methods_cpu_600_rest_seeds"}
