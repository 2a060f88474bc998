"""lm_finetune, CPU-sized: LoRA (r=8, every linear layer, lr 1e-3) and full fine-tuning (lr 5e-5) of
SmolLM2-135M on the Rotten Tomatoes snippets as text, 20 steps of batch 8 x 64-token packed rows (10,240
training tokens), seeds 0, 1, 2; validation perplexity on its first 64 packed rows before the first step and at the
end; test perplexity on the first 300 test snippets (packed).

  python -m launch.launchers experiments/lm_finetune/sweep_cpu.py
"""

from pathlib import Path

from launch.sweep import load_file

_paper = load_file(Path(__file__).with_name("sweep.py"), "_lm_finetune_sweep")


def get_sweep():
  return _paper.sweep("steps=20,batch=8,max_length=64,eval_every=50,eval_limit=64", (0, 1, 2), "runs/lm_finetune_cpu",
                      {"task.options.split_limits": {"test": 300}, "wandb.mode": "disabled"})
