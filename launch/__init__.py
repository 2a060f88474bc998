"""Sweep expansion and launchers (local, TPU pod, Slurm, SkyPilot, W&B sweeps)."""
