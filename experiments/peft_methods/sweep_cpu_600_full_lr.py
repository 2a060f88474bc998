"""peft_methods at 600 steps: the body learning rate of full fine-tuning, chosen on the whole validation split. The
table's 5e-5 (the quickstart's, not tuned) reads 0.812 test accuracy against the PyTorch reference's 0.845, so the
table's rate and two higher ones run here with everything else as the table's full fine-tuning point (seed 0, head
at 1e-2), each scored on every validation example (`task.eval_limit=0`), the test split not read:

  python -m launch.launchers experiments/peft_methods/sweep_cpu_600_full_lr.py
  python -m launch.aggregate runs/peft_methods_cpu_600_full_lr --group-by=optimizer.lr --metric=eval/accuracy \\
      --out=experiments/peft_methods/results/cpu_600_full_lr
"""

from pathlib import Path

from launch.sweep import load_file

_paper = load_file(Path(__file__).with_name("sweep.py"), "_peft_methods_sweep")

LRS = (5e-5, 1e-4, 2e-4)


def get_sweep():
  (point,) = [p for (label, _, _), p in zip(_paper.METHODS, _paper.sweep(_paper.STEPS, (0,), "")["list"])
              if label == "full"]
  return {"config": f"configs/quickstart.py:steps={_paper.STEPS},baselines=False",
          "workdir": "runs/peft_methods_cpu_600_full_lr", "grid": {"seed": [0]},
          "list": [{**point, "arg": f"{point['arg']},lr={lr}", "task.eval_limit": 0, "task.test_split": ""}
                   for lr in LRS]}
