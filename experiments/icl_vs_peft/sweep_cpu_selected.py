"""icl_vs_peft, CPU-sized: LoRA and IA3 fine-tuned on the k examples of draws 0-4 (k = 4, 16, 32; draws
outermost) at the learning rate validation chose: per method, the rate of the highest validation accuracy in
results/cpu/tune/summary.json (the check at k=16, draw 0: sweep_cpu.py's rate and sweep_tune_cpu.py's; aggregate it
first, as run.sh does), otherwise as sweep_cpu.py (20 steps, the first 200 test examples, validation accuracy on
its first 100 at the end), each method with the config's default answer cue ("Answer") and, where
sweep_prompt_tune_cpu.py's check chose another (`chosen_cues`), with that one too. The runs at the chosen rate and
cue are the fine-tuned rows the README reports first.

  python -m launch.launchers experiments/icl_vs_peft/sweep_cpu_selected.py
"""

from pathlib import Path

from launch.sweep import load_file

HERE = Path(__file__).parent
_paper = load_file(HERE / "sweep.py", "_icl_vs_peft_sweep")
_tune = load_file(HERE / "sweep_tune_cpu.py", "_icl_vs_peft_tune")
_prompt = load_file(HERE / "sweep_prompt_tune_cpu.py", "_icl_vs_peft_prompt_tune")


def get_sweep():
  lr = _tune.chosen_lrs()
  default, cues = _prompt.CUES[0], _prompt.chosen_cues()
  suffixes = {m: [""] + ([f",cue={c}"] if c != default else []) for m, c in cues.items()}
  points = [f"{p},lr={lr[m]}{suffix}" for s in range(_paper.DRAWS) for m in _paper.METHODS
            for p in _paper.peft_points(20, (s,), 200, 100, methods=(m,)) for suffix in suffixes[m]]
  return _paper.sweep(points, "runs/icl_vs_peft_cpu_selected")
