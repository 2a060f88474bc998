"""icl_vs_peft, paper-sized (for an accelerator; not run here): k-shot ICL for k in 0, 4, 16, 32 over 5
demonstration draws against LoRA and IA3 fine-tuned on the same k examples (5 draws, 1000 steps at batch 8,
T-Few's step count), every test example (1,203) and the whole validation split. It runs the config's defaults for
the learning rate and the answer cue (`Answer`); the CPU-sized checks of both on validation (README) are to be
repeated at this size (sweep_tune_cpu.py, sweep_prompt_cpu.py, sweep_prompt_tune_cpu.py with its steps and limits).

  python -m launch.launchers experiments/icl_vs_peft/sweep.py --target=slurm --gpus-per-node=1 ...
  python -m launch.aggregate 'runs/icl_vs_peft/method=lora*' 'runs/icl_vs_peft/method=ia3*' \\
      --group-by=peft.method,task.options.train_k --out=experiments/icl_vs_peft/results/paper
  python -m experiments.icl_vs_peft.table --results=experiments/icl_vs_peft/results/paper \\
      --icl=runs/icl_vs_peft/method=icl --write
"""

KS = (4, 16, 32)
METHODS = ("lora", "ia3")
DRAWS = 5  # T-Few's number of demonstration / training-set draws (the CPU-sized sweeps draw as many)


def icl_points(seeds: int, limit: int) -> list[str]:
  """One ICL run scores every k (0 and KS) for draws 0..seeds-1."""
  return [f"method=icl,ks=0+{'+'.join(map(str, KS))},seeds={seeds},limit={limit}"]


def peft_points(steps: int, seeds, limit: int, eval_limit: int, methods=METHODS) -> list[str]:
  """One fine-tuning run per (draw, method, k), draws outermost (a sweep cut short has whole draws)."""
  return [f"method={m},k={k},seed={s},steps={steps},limit={limit},eval_limit={eval_limit}"
          for s in seeds for m in methods for k in KS]


def sweep(points: list[str], workdir: str) -> dict:
  return {"config": "configs/icl_vs_peft.py", "workdir": workdir, "grid": {"arg": points}}


def get_sweep():
  return sweep(icl_points(DRAWS, 0) + peft_points(1000, range(DRAWS), 0, 0), "runs/icl_vs_peft")
