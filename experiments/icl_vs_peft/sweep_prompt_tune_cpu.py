"""icl_vs_peft, the fine-tuning side's prompt chosen on validation (CPU-sized): LoRA and IA3 at k=16, draw 0, 20
steps, at the learning rates validation chose (results/cpu/tune/summary.json), once per answer cue of
sweep_prompt_cpu.py; validation accuracy on the first 100 examples (128: whole batches of 32) at the end, the test
split not read. Per method, the cue of the higher validation accuracy is chosen (`chosen_cues`, which
sweep_cpu_selected.py reads).

  python -m launch.launchers experiments/icl_vs_peft/sweep_prompt_tune_cpu.py
  python -m launch.aggregate 'runs/icl_vs_peft_prompt_tune_cpu/method=*' --group-by=peft.method,task.answer_prefix \\
      --metric=eval/accuracy --out=experiments/icl_vs_peft/results/cpu/prompt_tune --copy-runs
"""

from pathlib import Path

from experiments.icl_vs_peft.table import chosen_prefixes, cue
from launch.sweep import load_file

HERE = Path(__file__).parent
_paper = load_file(HERE / "sweep.py", "_icl_vs_peft_sweep")
_prompt = load_file(HERE / "sweep_prompt_cpu.py", "_icl_vs_peft_prompt")
_tune = load_file(HERE / "sweep_tune_cpu.py", "_icl_vs_peft_tune")
CUES = _prompt.CUES


def chosen_cues() -> dict[str, str]:
  """{method: the cue of its highest validation accuracy in results/cpu/prompt_tune/summary.json}."""
  prefixes = chosen_prefixes(HERE / "results" / "cpu")
  if set(prefixes) != set(_paper.METHODS):
    raise SystemExit(f"results/cpu/prompt_tune/summary.json has {sorted(prefixes)}, not every method of "
                     f"{list(_paper.METHODS)}: aggregate the check first (this file's docstring)")
  return {m: cue(p).rstrip(":") for m, p in prefixes.items()}


def get_sweep():
  lr = _tune.chosen_lrs()
  points = [f"method={m},k=16,seed=0,steps=20,limit=200,eval_limit=100,lr={lr[m]},cue={c}"
            for m in _paper.METHODS for c in CUES]
  return {**_paper.sweep(points, "runs/icl_vs_peft_prompt_tune_cpu"), "list": [{"task.test_split": ""}]}
