"""peft_methods, full fine-tuning at the PyTorch reference's budget (600 steps, batch 32, max length 64) with the
transformers Trainer's defaults instead of the quickstart's settings: BERT's pooler + classifier (pool=bert), dropout
0.1 on hidden states, attention probabilities and the pooled features (config.json's rates), one learning rate 5e-5
for everything (head included), weight decay 0, linear decay to 0 without warm-up; gradient clipping at 1 as both
have. The same recipe as `reference_torch.py --recipe=hf`, on the same batches.

  python -m launch.launchers experiments/peft_methods/sweep_cpu_hf_recipe.py
"""

SEEDS = (0,)
HF_RECIPE = {"schedule.name": "linear", "optimizer.weight_decay": 0.0, "model.overrides.dropout": 0.1,
             "model.overrides.attention_dropout": 0.1}


def get_sweep():
  return {"config": "configs/quickstart.py:steps=600,baselines=False", "workdir": "runs/peft_methods_cpu_600_hf",
          "grid": {"seed": list(SEEDS)},
          "list": [{"arg": "method=full,pool=bert,warmup=0,head_lr=5e-5", **HF_RECIPE, "eval_every": 0,
                    "checkpoint_every": 0}]}
