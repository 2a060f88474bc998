"""icl_vs_peft, IA3's learning rate checked again with the cue its prompt check chose (CPU-sized): its other
candidate rate (3e-2, beside the chosen 1e-2) at k=16, draw 0, 20 steps, cue=Sentiment, validation accuracy on the
first 100 examples (128: whole batches of 32), the test split not read; the 1e-2 run with Sentiment is
sweep_prompt_tune_cpu.py's.

  python -m launch.launchers experiments/icl_vs_peft/sweep_tune_cue_cpu.py
  python -m launch.aggregate 'runs/icl_vs_peft_prompt_tune_cpu/method=ia3*cue=Sentiment' 'runs/icl_vs_peft_tune_cue_cpu/*' \\
      --group-by=peft.method,optimizer.lr,task.answer_prefix --metric=eval/accuracy \\
      --out=experiments/icl_vs_peft/results/cpu/tune_cue --copy-runs
"""


def get_sweep():
  return {"config": "configs/icl_vs_peft.py", "workdir": "runs/icl_vs_peft_tune_cue_cpu",
          "grid": {"arg": ["method=ia3,k=16,seed=0,steps=20,limit=200,eval_limit=100,lr=0.03,cue=Sentiment"]},
          "list": [{"task.test_split": ""}]}
