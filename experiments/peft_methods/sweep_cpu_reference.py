"""peft_methods at the PyTorch reference's budget (600 steps, batch 32, max length 64), seed 0, for the three
methods the reference reports (LoRA r=8 on q,v: 0.808; full fine-tuning: 0.845; pooler + classifier: 0.724 test
accuracy), run here on CPU. Everything else as sweep.py (its points for those methods; our head is the
mean-pooled one of the other rows, the reference's is BERT's pooler + classifier).

  python -m launch.launchers experiments/peft_methods/sweep_cpu_reference.py

aggregated with seeds 1-2 (sweep_cpu_reference_seeds.py) and the other methods (sweep_cpu_600_rest.py) by the
command in run.sh; then `python -m experiments.peft_methods.table --write`.
"""

from pathlib import Path

from launch.sweep import load_file

_paper = load_file(Path(__file__).with_name("sweep.py"), "_peft_methods_sweep")

REFERENCE = ("lora (r=8, q,v)", "head-only", "full")  # in run order: the cheap ones first


def get_sweep():
  sweep = _paper.sweep(_paper.STEPS, (0,), "runs/peft_methods_cpu_600")
  by_label = dict(zip((label for label, _, _ in _paper.METHODS), sweep["list"]))
  sweep["list"] = [by_label[label] for label in REFERENCE]
  return sweep
