"""The README's error tables from results/<curve>/results.json (squared error / d at chosen numbers of
in-context examples), with their title lines, between the `<!-- linear: ... -->` and `<!-- sparse_linear: ... -->`
markers.

  python -m experiments.icl_regression.table [--results=DIR] --write
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from experiments import marked

HERE = Path(__file__).parent
KS = (0, 1, 2, 3, 5, 10, 20)


def table(name: str, curves: dict) -> str:
  lines = [f"**{name}** (squared error / d; columns: number of in-context examples)", "","| estimator | " + " | ".join(map(str, KS)) + " |", "|" + "---|" * (len(KS) + 1)]
  lines += [f"| {name} | " + " | ".join(f"{c[k]:.3f}" for k in KS) + " |" for name, c in curves.items()]
  return "\n".join(lines)


def main(argv=None) -> None:
  ap = argparse.ArgumentParser(description=__doc__)
  ap.add_argument("--results", default=str(HERE / "results"))
  ap.add_argument("--write", action="store_true", help="write the tables into README.md")
  args = ap.parse_args(argv)
  for name in ("linear", "sparse_linear"):
    path = Path(args.results) / name / "results.json"
    if not path.exists():  # a folder with one curve (a re-run of one)
      print(f"{name}: no {path}\n")
      continue
    body = table(name, json.loads(path.read_text())["curves"])
    print(f"{name}\n{body}\n")
    if args.write:
      marked.write(HERE / "README.md", body, name)


if __name__ == "__main__":
  main()
