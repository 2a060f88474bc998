"""icl_vs_peft, CPU-sized ICL: k in 0, 4, 16, 32, draws 0-4, calibrated and not (one run), the first 200
test examples, with the answer cue validation chose (sweep_prompt_cpu.py; "Answer", the config's default, before
that check).

  python -m launch.launchers experiments/icl_vs_peft/sweep_icl_cpu.py
"""

from pathlib import Path

from launch.sweep import load_file

HERE = Path(__file__).parent
_paper = load_file(HERE / "sweep.py", "_icl_vs_peft_sweep")
_prompt = load_file(HERE / "sweep_prompt_cpu.py", "_icl_vs_peft_prompt")


def get_sweep():
  cue = _prompt.chosen_cue()
  if cue == _prompt.CUES[0]:
    return _paper.sweep(_paper.icl_points(_paper.DRAWS, 200), "runs/icl_vs_peft_cpu_icl")
  return _paper.sweep([f"{p},cue={cue}" for p in _paper.icl_points(_paper.DRAWS, 200)], f"runs/icl_vs_peft_cpu_icl_{cue}")
