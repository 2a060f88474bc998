"""icl_vs_peft, the learning rate chosen on validation (CPU-sized): at k=16 (draw 0), 20 steps, each method's
other candidate learning rate (LoRA 1e-3 beside the sweep's 3e-3; IA3 1e-2 beside 3e-2), validation accuracy
on its first 100 examples at the end, no test evaluation. The candidates' validation accuracy at 3e-3 / 3e-2 is
that of the k=16 runs of sweep_cpu.py (same settings).

  python -m launch.launchers experiments/icl_vs_peft/sweep_tune_cpu.py
"""


def get_sweep():
  arg = "k=16,seed=0,steps=20,limit=200,eval_limit=100"
  return {"config": "configs/icl_vs_peft.py", "workdir": "runs/icl_vs_peft_tune_cpu",
          "grid": {"arg": [f"method=lora,{arg},lr=0.001", f"method=ia3,{arg},lr=0.01"]},
          "list": [{"task.test_split": ""}]}
