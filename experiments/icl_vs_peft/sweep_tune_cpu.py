"""icl_vs_peft, learning rate chosen on validation (CPU-sized): LoRA and IA3 at k=16 (draw 0), 30 steps,
two learning rates each; validation accuracy on its first 100 examples every 10 steps; no test evaluation.

  python -m launch.launchers experiments/icl_vs_peft/sweep_tune_cpu.py
  python -m launch.aggregate runs/icl_vs_peft_tune_cpu --group-by=peft.method,optimizer.lr \\
      --out=experiments/icl_vs_peft/results/tune_cpu
"""


def get_sweep():
  arg = "k=16,seed=0,steps=30,eval_every=10,eval_limit=100"
  return {"config": "configs/icl_vs_peft.py", "workdir": "runs/icl_vs_peft_tune_cpu",
          "grid": {"arg": [f"method=lora,{arg},lr=0.001", f"method=lora,{arg},lr=0.003",
                           f"method=ia3,{arg},lr=0.01", f"method=ia3,{arg},lr=0.03"]},
          "list": [{"task.test_split": ""}]}
