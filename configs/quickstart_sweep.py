"""Sweep beside configs/quickstart.py: LoRA rank x learning rate.

  python -m launch.launchers configs/quickstart_sweep.py --target=local   # or tpu / slurm / skypilot / wandb
"""


def get_sweep():
  return {"config": "configs/quickstart.py", "workdir": "runs/quickstart_sweep",
          "grid": {"peft.r": [4, 8, 16], "optimizer.lr": [1e-3, 2e-3]}}
