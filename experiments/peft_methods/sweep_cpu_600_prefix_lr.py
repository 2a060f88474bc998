"""peft_methods at 600 steps: the learning rate of reparameterised prefix tuning, chosen on validation. At the
table's 2e-3 it predicts the majority class (sweep_cpu_600_rest.py; 0.633 accuracy on the validation examples
below), so two lower rates run here with everything else as there (seed 0), scored on the same first 256
validation examples (the config's `task.eval_limit`), the test split not read:

  python -m launch.launchers experiments/peft_methods/sweep_cpu_600_prefix_lr.py
  python -m launch.aggregate runs/peft_methods_cpu_600_prefix_lr "runs/peft_methods_cpu_600_rest/method=prefix_projection=True" \\
      --group-by=optimizer.lr --metric=eval/accuracy --out=experiments/peft_methods/results/cpu_600_prefix_lr

(the second run directory: the table's 2e-3 run, whose validation accuracy is read beside the candidates').
"""

from pathlib import Path

from launch.sweep import load_file

_paper = load_file(Path(__file__).with_name("sweep.py"), "_peft_methods_sweep")

LRS = (1e-4, 5e-4)


def get_sweep():
  (point,) = [p for (label, _, _), p in zip(_paper.METHODS, _paper.sweep(_paper.STEPS, (0,), "")["list"])
              if label == "prefix (reparameterised)"]
  return {"config": f"configs/quickstart.py:steps={_paper.STEPS},baselines=False",
          "workdir": "runs/peft_methods_cpu_600_prefix_lr",
          "grid": {"seed": [0], "optimizer.lr": list(LRS)}, "list": [{**point, "task.test_split": ""}]}
