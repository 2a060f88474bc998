"""Sweep beside configs/quickstart.py: LoRA rank x learning rate, one run directory per point under
runs/quickstart_sweep/.

  python -m launch.launchers configs/quickstart_sweep.py --dry-run                 # the 6 commands
  python -m launch.launchers configs/quickstart_sweep.py                           # run them here, in turn
  python -m launch.launchers configs/quickstart_sweep.py --target=slurm --partition=gpu --gpus-per-node=1
  python -m launch.launchers configs/quickstart_sweep.py --target=skypilot --accelerators=L4:1 --bucket=gs://B
  python -m launch.launchers configs/quickstart_sweep.py --target=wandb            # then: wandb agent ...
  python -m launch.aggregate runs/quickstart_sweep --group-by=peft.r,optimizer.lr --out=runs/quickstart_sweep/summary
"""


def get_sweep():
  return {"config": "configs/quickstart.py", "workdir": "runs/quickstart_sweep",
          "grid": {"peft.r": [4, 8, 16], "optimizer.lr": [1e-3, 2e-3]}}
