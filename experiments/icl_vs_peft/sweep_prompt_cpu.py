"""icl_vs_peft, the prompt chosen on validation (CPU-sized): ICL with the table's settings (k in 0, 4, 16, 32, draws
0-4, calibrated and not) on the first 200 validation examples, once per answer cue: "Review: {text}\\nAnswer:" (the
first table's prompt, fixed beforehand) and "Review: {text}\\nSentiment:" (experiments/icl_rotten_tomatoes' cue). The
cue with the higher uncalibrated accuracy averaged over every (k, draw) is the one chosen; the test split is not read.

  python -m launch.launchers experiments/icl_vs_peft/sweep_prompt_cpu.py
"""

from pathlib import Path

from launch.sweep import load_file

_paper = load_file(Path(__file__).with_name("sweep.py"), "_icl_vs_peft_sweep")

CUES = ("Answer", "Sentiment")


def get_sweep():
  (icl,) = _paper.icl_points(_paper.DRAWS, 200)
  return _paper.sweep([f"{icl},split=validation,cue={cue}" for cue in CUES], "runs/icl_vs_peft_prompt_cpu")
