"""peft_methods at the PyTorch reference's budget (LoRA paper Table 2 style, He et al. 2022 methods): every
method on all-MiniLM-L6-v2 + Rotten Tomatoes, batch 32, max length 64, 600 steps, 3 seeds. For accelerators:

  python -m launch.launchers experiments/peft_methods/sweep.py --target=slurm --gpus-per-node=1 ...
  python -m launch.aggregate runs/peft_methods --group-by=arg --out=experiments/peft_methods/results/paper

What ran here (2 CPU cores) is run.sh: these points at this budget, 3 seeds, in parts (sweep_cpu_reference*.py,
sweep_cpu_600_rest*.py, ...), and at 100 steps (sweep_cpu.py, seed 0; sweep_cpu_seeds.py, seeds 1 and 2).
"""

STEPS = 600
SEEDS = (0, 1, 2)

# (label, the quickstart config's argument, peft overrides): the methods of the table.
METHODS = (
    ("full", "method=full", {}),
    ("head-only", "method=head", {}),
    ("bitfit", "method=bitfit", {}),
    ("layernorm", "method=layernorm", {}),
    ("layers (top 2)", "method=layers", {}),
    ("houlsby adapter", "method=adapter", {"peft.config": "houlsby"}),
    ("pfeiffer adapter", "method=adapter", {"peft.config": "pfeiffer"}),
    ("parallel adapter", "method=adapter", {"peft.placement": "parallel"}),
    ("prefix", "method=prefix", {}),
    ("prefix (reparameterised)", "method=prefix", {"peft.projection": True}),
    ("prompt", "method=prompt", {}),
    ("ia3", "method=ia3", {}),
    ("lora (r=8, q,v)", "method=lora,targets=qv", {}),
    ("rslora (r=8, q,v)", "method=lora,targets=qv", {"peft.rslora": True}),
    ("dora (r=8, q,v)", "method=lora,targets=qv", {"peft.dora": True}),
    ("mam (prefix + parallel adapter)", "method=mam", {}),
)


def point(label: str, lr: float = 0.0) -> dict:
  """`label`'s point of the table; with `lr`, at that body learning rate (the quickstart's `lr=` argument: the fresh
  head keeps its own rate)."""
  (p,) = [{"arg": arg, **peft, "eval_every": 0, "checkpoint_every": 0} for name, arg, peft in METHODS if name == label]
  return {**p, "arg": f"{p['arg']},lr={lr}"} if lr else p


def config(steps: int = STEPS) -> str:
  return f"configs/quickstart.py:steps={steps},baselines=False"


def sweep(steps: int, seeds, workdir: str) -> dict:
  return {"config": config(steps), "workdir": workdir, "grid": {"seed": list(seeds)},
          "list": [point(label) for label, _, _ in METHODS]}


def get_sweep():
  return sweep(STEPS, SEEDS, "runs/peft_methods")
