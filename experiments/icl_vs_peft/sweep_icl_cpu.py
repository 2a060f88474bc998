"""icl_vs_peft, CPU-sized ICL: k in 0, 4, 16, 32, draws 0-4, calibrated and not (one run), the first 200
test examples: with the config's default answer cue ("Answer", fixed before the prompt check) and, where
sweep_prompt_cpu.py's check on validation chose another, with that one (the table's ICL rows; the first run is kept
below them, marked).

  python -m launch.launchers experiments/icl_vs_peft/sweep_icl_cpu.py
"""

from pathlib import Path

from launch.sweep import load_file

HERE = Path(__file__).parent
_paper = load_file(HERE / "sweep.py", "_icl_vs_peft_sweep")
_prompt = load_file(HERE / "sweep_prompt_cpu.py", "_icl_vs_peft_prompt")


def get_sweep():
  cue = _prompt.chosen_cue()
  (point,) = _paper.icl_points(_paper.DRAWS, 200)
  return _paper.sweep([point] + ([f"{point},cue={cue}"] if cue != _prompt.CUES[0] else []), "runs/icl_vs_peft_cpu_icl")
