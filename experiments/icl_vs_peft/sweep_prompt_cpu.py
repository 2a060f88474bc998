"""icl_vs_peft, the prompt chosen on validation (CPU-sized): ICL with the table's settings (k in 0, 4, 16, 32, draws
0-4, calibrated and not) on the first 200 validation examples, once per answer cue: "Review: {text}\\nAnswer:" (the
first table's prompt, fixed beforehand) and "Review: {text}\\nSentiment:" (experiments/icl_rotten_tomatoes' cue). The
cue with the higher uncalibrated accuracy averaged over every (k, draw) is the one chosen (`chosen_cue`, which
sweep_icl_cpu.py reads); the test split is not read. Each run's record is copied to results/cpu/prompt/CUE/.

  python -m launch.launchers experiments/icl_vs_peft/sweep_prompt_cpu.py
  for c in Answer Sentiment; do mkdir -p experiments/icl_vs_peft/results/cpu/prompt/$c; \
    cp runs/icl_vs_peft_prompt_cpu/*cue=$c/{results.json,config.json,metrics.jsonl,command.txt} \
    experiments/icl_vs_peft/results/cpu/prompt/$c/; done
"""

import json
from pathlib import Path

from launch.sweep import load_file

HERE = Path(__file__).parent
_paper = load_file(HERE / "sweep.py", "_icl_vs_peft_sweep")

CUES = ("Answer", "Sentiment")  # the first is configs/icl_vs_peft.py's default


def mean_accuracy(results: dict) -> float:
  """Uncalibrated ICL accuracy averaged over every (k, draw) of a run's results.json."""
  accs = [s["acc"] for per_k in results["per_seed"].values() for s in per_k]
  return sum(accs) / len(accs)


def chosen_cue() -> str:
  runs = {c: json.loads((HERE / "results" / "cpu" / "prompt" / c / "results.json").read_text()) for c in CUES}
  if any(r["split"] != "validation" for r in runs.values()):
    raise SystemExit("the prompt check must read validation queries")
  return max(CUES, key=lambda c: mean_accuracy(runs[c]))


def get_sweep():
  (icl,) = _paper.icl_points(_paper.DRAWS, 200)
  return _paper.sweep([f"{icl},split=validation,cue={cue}" for cue in CUES], "runs/icl_vs_peft_prompt_cpu")
