"""icl_vs_peft, the learning rate chosen on validation (CPU-sized): at k=16 (draw 0), 20 steps, each method's
other candidate learning rate (LoRA 1e-3 beside the sweep's 3e-3; IA3 1e-2 beside 3e-2), validation accuracy
on its first 100 examples at the end, no test evaluation. The candidates' validation accuracy at 3e-3 / 3e-2 is
that of the k=16 runs of sweep_cpu.py (same settings). Aggregated (run.sh) into results/cpu/tune/, whose choice
`chosen_lrs` gives to sweep_cpu_selected.py and sweep_prompt_tune_cpu.py.

  python -m launch.launchers experiments/icl_vs_peft/sweep_tune_cpu.py
"""

import json
from pathlib import Path

from launch.aggregate import best_row
from launch.sweep import load_file

HERE = Path(__file__).parent
_paper = load_file(HERE / "sweep.py", "_icl_vs_peft_sweep")


def chosen_lrs() -> dict[str, float]:
  """{method: the learning rate of its highest validation accuracy in results/cpu/tune/summary.json}."""
  tune = json.loads((HERE / "results" / "cpu" / "tune" / "summary.json").read_text())
  return {m: best_row(tune, "eval/accuracy", {"peft.method": m})["optimizer.lr"] for m in _paper.METHODS}


def get_sweep():
  arg = "k=16,seed=0,steps=20,limit=200,eval_limit=100"
  return {"config": "configs/icl_vs_peft.py", "workdir": "runs/icl_vs_peft_tune_cpu",
          "grid": {"arg": [f"method=lora,{arg},lr=0.001", f"method=ia3,{arg},lr=0.01"]},
          "list": [{"task.test_split": ""}]}
