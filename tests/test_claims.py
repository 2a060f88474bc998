"""Figures quoted in experiments/*.md against the committed JSON they come from.

Benchmarks: every number in a table row of experiments/benchmarks/RESULTS.md must be one that
`experiments.benchmarks.report` writes for that case from the run's `results.json` (rounded as quoted), and
the figures the prose derives from the JSON are recomputed here. In-context regression: the README tables are
the committed curves and the LSA-vs-GD JSON. Re-running a benchmark without updating the text fails here.
"""

import json
import re
from pathlib import Path

import pytest

from experiments.benchmarks import report

ROOT = Path(__file__).parent.parent
BENCH = ROOT / "experiments" / "benchmarks"
RESULTS_MD = (BENCH / "RESULTS.md").read_text()
FLAT = " ".join(RESULTS_MD.split())  # prose with its line breaks folded
NUMBER = re.compile(r"\d[\d,]*(?:\.\d+)?")


def run_cases(run: str) -> dict[str, dict]:
  """{case letter: case dict} of results/RUN/results.json."""
  data = json.loads((BENCH / "results" / run / "results.json").read_text())
  return {c["case"][0]: c for c in data["cases"]}


# Runs of `experiments.benchmarks.run` (their JSON has "cases"); other result folders have their own format.
RUNS = sorted(p.parent.name for p in (BENCH / "results").glob("*/results.json") if "cases" in json.loads(p.read_text()))


def table_rows() -> list[tuple[str, str]]:
  """(run, row) for every case row of a table under a heading that names `results/RUN/`."""
  out, run = [], None
  for line in RESULTS_MD.splitlines():
    if line.startswith("#"):
      m = re.search(r"`results/([\w-]+)/`", line)
      run = m.group(1) if m and m.group(1) in RUNS else None
    elif run and line.startswith("| ("):
      out.append((run, line))
  return out


def numbers(text: str) -> list[str]:
  text = re.sub(r"`[^`]*`", "", text).replace("6N", "")  # code spans (preset names) and the "6N" label
  return [n.replace(",", "") for n in NUMBER.findall(text)]


def allowed_numbers(case: dict) -> list[float]:
  """What report.table writes for the case, plus its batch and sequence and the 6N MFU of both sides."""
  vals = [float(n) for n in numbers(report.table([case]).splitlines()[-1])]
  vals += [case[k] for k in ("batch", "seq") if k in case]
  peak = (case.get("device") or {}).get("bf16_peak_flops")
  flops = case.get("flops_per_step")
  if peak and flops:
    vals += [100 * flops["six_n"] / case[side]["median_s"] / peak for side in ("ours", "theirs")]
  return vals


def quoted(value: str, candidates: list[float]) -> bool:
  decimals = len(value.split(".")[1]) if "." in value else 0
  return any(round(c, decimals) == float(value) for c in candidates)


def test_every_benchmark_table_names_an_existing_run():
  assert {run for run, _ in table_rows()} == set(RUNS)


@pytest.mark.parametrize("run,row", table_rows())
def test_benchmark_table_numbers_come_from_the_json(run, row):
  letter = row[3]
  case = run_cases(run)[letter]
  allowed = allowed_numbers(case)
  if "failed" in row or "out of memory" in row:  # a failed case may quote the same case of another run
    allowed += [v for other in RUNS if letter in run_cases(other) and "error" not in run_cases(other)[letter]
                for v in allowed_numbers(run_cases(other)[letter])]
  missing = [n for n in numbers(row) if not quoted(n, allowed)]
  assert not missing, f"{run}: {missing} not in the JSON for {row[:60]}"


def derived_claims() -> list[str]:
  """Strings the prose of RESULTS.md must contain, computed from the committed JSON."""
  cpu, train, two = run_cases("cpu"), run_cases("cpu_train"), run_cases("cpu_2threads")
  after, before = run_cases("gpu_h100_after"), run_cases("gpu_h100_before")
  gib = 2 ** 30
  claims = []
  # (c) prefix: the first losses differ, and the text quotes them.
  for run in (cpu, train):
    c = run["c"]
    assert abs(c["ours_first_loss"] - c["theirs_first_loss"]) > 1e-3
    claims.append(f"{c['ours_first_loss']:.4f} vs {c['theirs_first_loss']:.4f}")
  # (e) hypernetwork: trainable counts differ by design; theirs is 4 peft adapters of (a)'s size.
  e, a = cpu["e"], cpu["a"]
  assert e["theirs_trainable_params"] == 4 * a["theirs_trainable_params"] != e["trainable_params"]
  claims += [f"{e['trainable_params']:,} trainable parameters",
             f"theirs {e['theirs_trainable_params']:,} = 4 x {a['theirs_trainable_params']:,}"]
  # GPU: hypernetwork vs single LoRA step time; (h) memory plan against the floor and the peak.
  claims.append(f"{after['e']['ours']['median_s'] * 1e3:.2f} ms vs {after['a']['ours']['median_s'] * 1e3:.2f} ms")
  h = after["h"]
  mem = h["xla_memory"]
  plan = mem["argument_size_in_bytes"] + mem["output_size_in_bytes"] - mem["alias_size_in_bytes"] + \
      mem["temp_size_in_bytes"]
  floor = h["memory_floor"]["total"]
  claims += [f"{mem['argument_size_in_bytes'] / 1e9:.2f} GB of arguments + {mem['temp_size_in_bytes'] / 1e9:.2f} GB "
             f"of temporaries = {plan / gib:.2f} GiB = {plan / floor:.2f}x the floor",
             f"The {(h['ours_peak_bytes'] - plan) / gib:.2f} GiB difference ({h['ours_peak_bytes'] / gib:.2f} - "
             f"{plan / gib:.2f})",
             f"{h['memory_floor']['weights'] / gib:.2f} GiB, `memory_floor.weights`",
             f"{h['ours_peak_bytes'] / gib:.2f} - {h['memory_floor']['weights'] / gib:.2f} = "
             f"{(h['ours_peak_bytes'] - h['memory_floor']['weights']) / gib:.1f} GiB "
             f"({(h['ours_peak_bytes'] - h['memory_floor']['weights']) / floor:.2f}x the floor)",
             f"temporaries at {before['a']['xla_memory']['temp_size_in_bytes'] / 1e9:.1f} GB",
             f"from {before['a']['xla_memory']['temp_size_in_bytes'] / 1e9:.1f} to "
             f"{after['a']['xla_memory']['temp_size_in_bytes'] / 1e9:.1f} GB"]
  # CPU: spreads, run-to-run movement of the unchanged PyTorch side, floor and compile-time ranges.
  one_core = [c for run in (cpu, train) for c in run.values()]
  spreads = lambda kinds: [100 * c[s]["iqr_rel"] / 2 for c in one_core + list(two.values()) if c["kind"] in kinds
                           for s in ("ours", "theirs")]
  lo, hi = min(spreads(("train", "score"))), max(spreads(("train", "score")))
  gen = sorted({round(x) for x in spreads(("generate",))})
  claims.append(f"{lo:.0f}-{hi:.0f}% for the training and scoring cases and {'/'.join(map(str, gen))}% for "
                "generation")
  moves = {k: abs(train[k]["theirs"]["tokens_per_s"] / cpu[k]["theirs"]["tokens_per_s"] - 1) for k in train}
  worst = max(moves, key=moves.get)
  claims.append(f"moved by up to {100 * moves[worst]:.0f}% (({worst}): {cpu[worst]['theirs']['tokens_per_s']:.0f} -> "
                f"{train[worst]['theirs']['tokens_per_s']:.0f} tokens/s)")
  floors = [c["ours_over_floor"] for run in (cpu, train, two) for c in run.values() if "ours_over_floor" in c]
  claims.append(f"{min(floors):.2f}-{max(floors):.2f}x the analytic floor")
  firsts = [c["ours_first_step_s"] for c in one_core]
  claims.append(f"one core): {min(firsts):.0f}-{max(firsts):.0f} s")
  ratios = {round(run["e"]["ours"]["median_s"] / run["a"]["ours"]["median_s"], 2) for run in (cpu, train)}
  assert len(ratios) == 1
  claims.append(f"takes {ratios.pop():.2f}x the time of a single-LoRA batch (a)")
  gpu_firsts = [c["ours_first_step_s"] for c in after.values() if "ours_first_step_s" in c and "error" not in c]
  claims.append(f"is {min(gpu_firsts):.0f}-{max(gpu_firsts):.0f} s for every GPU case")
  return claims


@pytest.mark.parametrize("claim", derived_claims())
def test_benchmark_prose_figures_match_the_json(claim):
  assert claim in FLAT


def icl_runs(names: list[str]) -> dict[str, dict]:
  """{name: results.json} of the few-shot scoring runs (`icl_fewshot.py`: rows with s_per_100) among names."""
  out = {}
  for name in names:
    path = BENCH / "results" / name / "results.json"
    data = json.loads(path.read_text()) if path.exists() else {}
    if any("s_per_100" in r for r in data.get("rows", [])):
      out[name] = data
  return out


def icl_table_rows() -> list[tuple[list[str], str]]:
  """(runs the heading names, row) for every k row of a few-shot scoring table in RESULTS.md."""
  out, runs = [], []
  for line in RESULTS_MD.splitlines():
    if line.startswith("#"):
      runs = list(icl_runs(re.findall(r"`results/([\w/-]+)/`", line)))
    elif runs and re.match(r"\| \d+ \|", line):
      out.append((runs, line))
  return out


def test_icl_scoring_tables_come_from_the_json():
  rows = icl_table_rows()
  assert len(rows) >= 12
  for runs, row in rows:
    k = int(row.split("|")[1])
    written = [line for run in runs for line in (BENCH / "results" / run / "results.md").read_text().splitlines()
               if line.startswith(f"| {k} |")]  # the row `icl_fewshot` wrote for this k, in each named run
    assert any(set(numbers(row)) <= set(numbers(w)) for w in written), (runs, row)


def test_xnnpack_table_is_the_json():
  rows = [line for line in RESULTS_MD.splitlines() if re.match(r"\| (on|off)_\d \|", line)]
  assert len(rows) == 4
  for row in rows:
    name, flag, ours, theirs, speedup = [c.strip() for c in row.strip("|").split("|")]
    data = json.loads((BENCH / "results" / "cpu_icl_xnnpack" / name / "results.json").read_text())
    (r,) = data["rows"]
    assert (flag == "on") == ("xnnpack=true" in data["xla_flags"]) and name.startswith(flag)
    assert [ours, theirs] == [f"{r['s_per_100'][s]:.2f}" for s in ("ours", "transformers")]
    assert speedup == f"{r['speedup_vs_transformers']:.2f}"


REGRESSION = ROOT / "experiments" / "icl_regression"


def test_icl_regression_tables_are_the_committed_curves():
  text = (REGRESSION / "README.md").read_text()
  blocks = re.findall(r"\*\*(\w+)\*\* \(squared error / d; columns: number of in-context examples\)\n\n"
                      r"(\|.*\|)\n\|[-|]+\|\n((?:\|.*\|\n)+)", text)
  assert [b[0] for b in blocks] == ["linear", "sparse_linear"]
  for name, header, body in blocks:
    curves = json.loads((REGRESSION / "results" / name / "results.json").read_text())["curves"]
    ks = [int(k) for k in header.strip("|").split("|")[1:]]
    for row in body.strip().splitlines():
      cells = [c.strip() for c in row.strip("|").split("|")]
      assert cells[1:] == [f"{curves[cells[0]][k]:.3f}" for k in ks], (name, cells[0])


def test_lsa_vs_gd_table_is_the_committed_json():
  text = " ".join((REGRESSION / "README.md").read_text().split())
  r = json.loads((REGRESSION / "results" / "lsa_vs_gd.json").read_text())
  for claim in (f"eta={r['eta']:.3f}", f"| {r['sensitivity_cos']:.4f} |",
                f"| {r['pred_diff']:.3f} (targets have RMS {r['target_rms']:.2f}) |",
                f"| {r['loss_lsa']:.3f} / {r['loss_gd']:.3f} |", f"{r['steps']} steps, batch {r['batch_size']}"):
    assert claim in text, claim


@pytest.mark.parametrize("run", RUNS)
def test_each_runs_results_md_is_its_json(run):
  data = json.loads((BENCH / "results" / run / "results.json").read_text())
  md = (BENCH / "results" / run / "results.md").read_text()
  assert f"- command: `{data['meta']['command']}`" in md
  rows = [r for r in report.table(data["cases"]).splitlines()[2:]]
  md_rows = [r for r in md.splitlines() if r.startswith("| (")]
  assert len(md_rows) == len(rows)
  for ours, written in zip(rows, md_rows):
    if "failed:" in ours:  # report.table keeps 120 characters of the error; older files cut it elsewhere
      assert written.split("failed:")[0] == ours.split("failed:")[0]
      continue
    assert ours.startswith(written[:-1])  # a file written before a column was added has fewer columns


def test_readme_method_table_is_the_committed_parameter_counts():
  text = (ROOT / "README.md").read_text()
  methods = json.loads((ROOT / "experiments" / "quickstart" / "results" / "method_params.json").read_text())["methods"]
  for m in methods:
    assert f"`--config=configs/quickstart.py:method={m['method']}` | {m['trainable_params']:,} " \
           f"({m['trainable_percent']:.3f}%) |" in text, m["method"]


def test_peft_methods_table_is_the_committed_summary():
  from experiments import marked
  from experiments.peft_methods.table import (chosen, label, lr_marker, lr_methods, lr_table, method_rows,
                                              recipe_table, reference_table, table, torch_rows)
  results = ROOT / "experiments" / "peft_methods" / "results"
  readme = (ROOT / "experiments" / "peft_methods" / "README.md").read_text()
  project = (ROOT / "README.md").read_text()
  summary = json.loads((results / "cpu" / "summary.json").read_text())
  assert marked.read(readme) == table(summary)
  assert len(summary["rows"]) == 16
  for r in summary["rows"]:
    assert_each_seed_once(r, label(r))
    assert sorted(x["seed"] for x in r["per_run"]) == [0, 1, 2], label(r)
  ref = json.loads((results / "cpu_600" / "summary.json").read_text())
  for text in (readme, project):
    assert marked.read(text, "table_600") == table(ref)
    assert marked.read(text, "reference") == reference_table(ref)
  seeds = {label(r): r["n_seeds"] for r in ref["rows"]}
  for r in ref["rows"]:  # each run counted once (runs can come from an earlier summary), and the mean is theirs
    assert_each_seed_once(r, label(r))
  assert len(seeds) == 24 and seeds["full"] == seeds["head-only"] == seeds["lora (r=8, q,v)"] == 3
  # reparameterised prefix tuning: the learning rate validation chose (its candidates never read test), 3 seeds
  tune_summary = json.loads((results / "cpu_600_prefix_lr" / "summary.json").read_text())
  assert marked.read(readme, "reparam_prefix_lr") == lr_table(tune_summary)
  tune = tune_summary["rows"]
  assert [r["optimizer.lr"] for r in tune if any(k.startswith("test/") for k in r)] == [0.002]  # the table's row
  best = chosen(tune_summary)["optimizer.lr"]
  assert seeds[label({"peft.method": "prefix", "peft.projection": True, "optimizer.lr": best})] == 3
  hf = json.loads((results / "cpu_600_hf" / "summary.json").read_text())
  torch = torch_rows(results / "torch")
  assert marked.read(readme, "recipe") == recipe_table(ref, hf, torch)
  assert marked.read(readme, "lora_recipe") == recipe_table(ref, None, torch, "lora (r=8, q,v)", "lora")
  assert set(torch) == {("full", "ours"), ("full", "hf"), ("lora", "ours")}
  # the learning rates checked on the whole validation split (none read test); a chosen rate that is not the
  # table's has its own 3-seed row
  lr_summary = json.loads((results / "cpu_600_lr" / "summary.json").read_text())
  from launch.sweep import load_file
  candidates = {name: sorted(lrs) for name, _, lrs in
                load_file(ROOT / "experiments/peft_methods/sweep_cpu_600_lr.py", "_claims_600_lr").RATES}
  assert lr_methods(lr_summary) and set(lr_methods(lr_summary)) == set(candidates)
  for m in lr_methods(lr_summary):
    assert marked.read(readme, lr_marker(m)) == lr_table(lr_summary, "validation accuracy (all 1,407)", m)
    rows = method_rows(lr_summary, m)  # every candidate of the sweep, none reading test
    assert sorted(r["optimizer.lr"] for r in rows) == candidates[m]
    assert not any(k.startswith("test/") for r in rows for k in r)
    assert seeds[label(chosen(lr_summary, m))] == 3


def test_peft_methods_100_steps_repeat_the_runs_of_earlier_days():
  """The 100-step table (2026-12-05) against the same points run earlier: the ablations' runs of 2026-11-29 at the
  five points both experiments have, seeds 0-2, bit for bit; the one-seed table of 2026-11-28, the same test accuracy
  in every row but MAM's (one example), as experiments/peft_methods/README.md says."""
  from experiments.peft_methods.table import label
  results = ROOT / "experiments" / "peft_methods" / "results"
  rows = {label(r): r for r in json.loads((results / "cpu" / "summary.json").read_text())["rows"]}
  runs = lambda row: {x["seed"]: x for x in row["per_run"]}

  def ablations(family):
    return json.loads((ROOT / "experiments/ablations/results/cpu" / family / "summary.json").read_text())["rows"]

  shared = {"layers (top 2)": ("layers", {"peft.top_k": 2}),
            "houlsby adapter": ("adapter", {"peft.reduction_factor": 16}),
            "prefix": ("prefix", {"peft.num_tokens": 10, "peft.projection": False, "optimizer.lr": 2e-3}),
            "prefix (reparameterised)": ("prefix", {"peft.num_tokens": 10, "peft.projection": True,
                                                    "optimizer.lr": 2e-3}),
            "lora (r=8, q,v)": ("lora", {"peft.r": 8, "peft.targets": "qv"})}
  metrics = ("test/loss", "test/accuracy", "test/macro_f1", "eval/loss", "eval/accuracy")
  for name, (family, keys) in shared.items():
    (theirs,) = [r for r in ablations(family) if all(r[k] == v for k, v in keys.items())]
    ours, theirs = runs(rows[name]), runs(theirs)
    assert set(ours) == set(theirs) == {0, 1, 2}, name
    for seed in ours:
      assert {m: ours[seed][m] for m in metrics} == {m: theirs[seed][m] for m in metrics}, (name, seed)
  earlier = {label(r): r for r in json.loads((results / "cpu_seed0_2026-11-28" / "summary.json").read_text())["rows"]}
  assert set(earlier) == set(rows) and all(r["n_seeds"] == 1 for r in earlier.values())
  changed = {k for k, r in earlier.items() if r["test/accuracy_mean"] != runs(rows[k])[0]["test/accuracy"]}
  mam = "mam (prefix + parallel adapter)"
  assert changed == {mam}  # MAM: one test example fewer right
  assert earlier[mam]["test/accuracy_mean"] - runs(rows[mam])[0]["test/accuracy"] == pytest.approx(1 / 1203)


def assert_each_seed_once(row: dict, what) -> None:
  """A summary row counts each of its runs' seeds once, and its test accuracy mean is theirs."""
  accs = [x["test/accuracy"] for x in row["per_run"]]
  assert len({x["seed"] for x in row["per_run"]}) == len(accs) == row["n_seeds"], what
  assert row["test/accuracy_mean"] == pytest.approx(sum(accs) / len(accs)), what


def test_ablations_tables_are_the_committed_summaries():
  from experiments import marked
  from experiments.ablations import table as ablations
  readme = (ROOT / "experiments" / "ablations" / "README.md").read_text()
  for family in (*ablations.FAMILIES, "icl"):
    written = marked.read(readme, family)
    assert written == (ablations.icl_table() if family == "icl" else ablations.table(family)), family
  for family in ablations.FAMILIES:  # every row from this experiment's own runs, each seed once
    for r in ablations.rows_of(family):
      assert_each_seed_once(r, (family, r["runs"]))
  icl = json.loads((ROOT / "experiments/ablations/results/cpu/icl_corruption/summary.json").read_text())["rows"]
  for r in icl:  # 3 seeds, and the row's accuracy is their mean
    assert r["n_seeds"] == len(r["acc_per_seed"]) == 3 and r["acc"] == pytest.approx(sum(r["acc_per_seed"]) / 3)


def test_hyperformer_table_is_the_committed_summary():
  from experiments import marked
  from experiments.hyperformer.table import table, unseen_table
  readme = (ROOT / "experiments" / "hyperformer" / "README.md").read_text()
  summary = json.loads((ROOT / "experiments" / "hyperformer" / "results" / "cpu" / "summary.json").read_text())
  assert marked.read(readme) == table(summary)
  assert {r["n_seeds"] for r in summary["rows"]} <= {1, 3}
  unseen = json.loads((ROOT / "experiments" / "hyperformer" / "results" / "cpu_unseen" / "summary.json").read_text())
  assert marked.read(readme, "unseen") == unseen_table(unseen)
  for r in unseen["rows"]:  # seeds 0-2 of every row, each once, all read from their run directories
    assert r["n_seeds"] == 3 and sorted(x["seed"] for x in r["per_run"]) == [0, 1, 2], r["peft.method"]
  hosts = {x.get("host") for r in unseen["rows"] for x in r["per_run"]}
  assert len(hosts) == 1 and None not in hosts  # one machine (the re-run of 2026-12-05)


def test_quantized_base_figures_are_the_committed_json():
  from experiments.benchmarks.quant_lora import markdown
  out = BENCH / "results" / "quant_lora_cpu"
  r = json.loads((out / "results.json").read_text())
  assert (out / "results.md").read_text() == markdown(r)
  table = [line for line in markdown(r).splitlines() if line.startswith("|")]
  assert "\n".join(table) in RESULTS_MD
  acc = {b: r["accuracy"][b]["test"]["accuracy"] for b in r["accuracy"]}
  assert abs(acc["nf4"] - acc["float32"]) <= 0.01  # the claim in RESULTS.md and the README
  readme = " ".join((ROOT / "README.md").read_text().split())
  mib = lambda b: f"{r['memory'][b]['frozen_bytes'] / 2 ** 20:.1f} MiB"
  ratio = r["step_s"]["nf4"]["median_s"] / r["step_s"]["float32"]["median_s"]
  for claim in (f"test accuracy {acc['nf4']:.4f} against {acc['float32']:.4f} on the float32 base",
                f"frozen weights {mib('nf4')} against {mib('float32')}", f"step time {ratio:.2f}x"):
    assert claim in readme, claim


def test_multi_adapter_figures_are_the_committed_json():
  """RESULTS.md's many-adapter table and figures are the ratios in results/multi_adapter_cpu*/results.json."""
  from experiments.benchmarks.multi_adapter import markdown
  ratios = {}
  for run in ("multi_adapter_cpu", "multi_adapter_cpu_idle"):
    out = BENCH / "results" / run
    r = json.loads((out / "results.json").read_text())
    res = r.pop("results")
    assert (out / "results.md").read_text() == markdown(r, res)
    ratios[run] = {part: {row["label"]: row["vs_single"] for row in rows} for part, rows in res.items()}
  full = ratios["multi_adapter_cpu"]
  x = lambda part, label: f"{full[part][label]:.2f}x"
  rows = [("fwd_bwd", "gather"), ("fwd_bwd", "mask"), ("generate", "gather"), ("generate", "mask"),
          ("hf_generate", "adapter_names"), ("hf_forward", "adapter_names")]
  for part, mode in rows:
    cells = [x(part, f"{mode}/{n}") for n in (1, 8, 64)]
    assert " | ".join(cells[:2]) + f" | **{cells[2]}** |" in RESULTS_MD or " | ".join(cells) + " |" in RESULTS_MD, \
        (part, mode, cells)
  idle = ratios["multi_adapter_cpu_idle"]
  f = lambda part: " / ".join(f"{idle[part][f'gather/{n}']:.2f}x" for n in (1, 8, 64))
  assert f"reads {f('fwd_bwd')} for training and {f('generate')} for generation" in FLAT
  for part, bound in (("fwd_bwd", 1.2), ("generate", 1.2)):
    assert full[part]["gather/64"] <= bound and idle[part]["gather/64"] <= bound


def test_meta_learning_table_is_the_committed_summary():
  from experiments import marked
  from experiments.meta_learning.table import table
  summary = json.loads((ROOT / "experiments/meta_learning/results/cpu/summary.json").read_text())
  readme = (ROOT / "experiments/meta_learning/README.md").read_text()
  assert marked.read(readme) == table(summary)
  for r in summary["rows"]:  # seeds 0, 1, 2 of every row, each its own evaluation draw
    accs = [x["test/icl_accuracy"] for x in r["per_run"]]
    assert sorted(x["seed"] for x in r["per_run"]) == [0, 1, 2] == list(range(r["n_seeds"]))
    assert r["test/icl_accuracy_mean"] == pytest.approx(sum(accs) / 3)
  no_meta = next(r for r in summary["rows"] if r["total_steps"] == 0)  # the same model at every seed: any spread
  assert no_meta["test/icl_accuracy_std"] > 0  # comes from the seed's draw of queries and demonstrations


def test_icl_vs_peft_table_is_the_committed_summary():
  from experiments import marked
  from experiments.icl_vs_peft.table import table
  summary = json.loads((ROOT / "experiments/icl_vs_peft/results/cpu/summary.json").read_text())
  assert marked.read((ROOT / "experiments/icl_vs_peft/README.md").read_text()) == table(summary)
  # the first ICL run (the prompt fixed before validation) re-run on the packed scorer (icl_recheck, the same command)
  # has every per-seed metric of the table's
  results = ROOT / "experiments/icl_vs_peft/results/cpu"
  icl, recheck = (json.loads((results / d / "results.json").read_text()) for d in ("icl_prompt_fixed", "icl_recheck"))
  assert json.loads((results / "icl_prompt_fixed" / "config.json").read_text()) == \
      json.loads((results / "icl_recheck" / "config.json").read_text())
  assert recheck["per_seed"] == icl["per_seed"] and len(icl["per_seed"]["32"]) == 5


def test_icl_vs_peft_prompt_was_chosen_on_validation():
  """Each side's answer cue in the table is the one its check chose on validation (ICL: sweep_prompt_cpu.py's
  records; fine-tuning: sweep_prompt_tune_cpu.py's summary), neither check read test, and the rows at a cue the check
  did not choose are marked."""
  from launch.sweep import load_file
  here = ROOT / "experiments/icl_vs_peft"
  icl_check = load_file(here / "sweep_prompt_cpu.py", "_claims_prompt")
  ft_check = load_file(here / "sweep_prompt_tune_cpu.py", "_claims_prompt_tune")
  for cue in icl_check.CUES:
    record = json.loads((here / "results/cpu/prompt" / cue / "results.json").read_text())
    assert record["split"] == "validation" and record["num_queries"] == 200 and len(record["per_seed"]["32"]) == 5
  tune = json.loads((here / "results/cpu/prompt_tune/summary.json").read_text())
  assert not any(k.startswith("test/") for r in tune["rows"] for run in r["per_run"] for k in run)
  chosen = {"icl": icl_check.chosen_cue(), "icl_calibrated": icl_check.chosen_cue(), **ft_check.chosen_cues()}
  summary = json.loads((here / "results/cpu/summary.json").read_text())
  assert summary["test_split"] == "test"
  for r in summary["rows"]:
    assert (r["cue"] == chosen[r["method"]] + ":") == (r["prompt_chosen"] == "validation"), r
  assert {r["method"] for r in summary["rows"] if r["prompt_chosen"] == "fixed"} == \
      {m for m, c in chosen.items() if c != icl_check.CUES[0]}
  # IA3's rate, re-checked with the cue it chose (validation only), is the table's
  from launch.aggregate import best_row
  recheck = json.loads((here / "results/cpu/tune_cue/summary.json").read_text())
  assert not any(k.startswith("test/") for r in recheck["rows"] for run in r["per_run"] for k in run)
  assert {r["task.answer_prefix"] for r in recheck["rows"]} == {"\n" + chosen["ia3"] + ":"}
  assert {r["lr"] for r in summary["rows"] if r["method"] == "ia3" and r["lr_chosen"] == "validation"} == \
      {best_row(recheck, "eval/accuracy")["optimizer.lr"]}


def test_lm_finetune_table_is_the_committed_summary():
  """The table reads the summary and each run's committed results.json (the perplexity before training), so every
  run the summary names must be committed under results/cpu/runs/."""
  from experiments import marked
  from experiments.lm_finetune.table import rows, table
  results = ROOT / "experiments/lm_finetune/results/cpu"
  assert marked.read((ROOT / "experiments/lm_finetune/README.md").read_text()) == table(rows(results))
  for r in json.loads((results / "summary.json").read_text())["rows"]:
    assert r["n_seeds"] == len(r["runs"]) == 3, r["peft.method"]


def test_run_copies_under_experiment_results_are_not_ignored_by_git():
  """Tables read each run's copied results.json under results/*/runs/; only the top-level runs/ is ignored."""
  import shutil
  import subprocess
  if shutil.which("git") is None or not (ROOT / ".git").exists():
    pytest.skip("not a git checkout")
  paths = ["experiments/lm_finetune/results/cpu/runs/x/results.json", "runs/x/results.json"]
  out = subprocess.run(["git", "check-ignore", *paths], cwd=ROOT, capture_output=True, text=True).stdout.split()
  assert out == ["runs/x/results.json"]


SUMMARIES_WITH_RUNS = sorted(p for p in (ROOT / "experiments").glob("*/results/**/summary.json")
                             if (p.parent / "runs").is_dir())


@pytest.mark.parametrize("path", SUMMARIES_WITH_RUNS, ids=lambda p: str(p.relative_to(ROOT / "experiments")))
def test_every_run_of_a_summary_has_its_record_beside_it(path):
  """A summary with a runs/ folder (launch.aggregate --copy-runs) holds the record of every run it aggregated, and
  each record's metrics, parameters and seed are the ones the summary's row recorded for that run."""
  from launch.aggregate import copy_names, load_run
  summary = json.loads(path.read_text())
  runs = [rec for row in summary["rows"] for rec in row["per_run"]]
  for rec, name in zip(runs, copy_names([r["run"] for r in runs])):
    copy = path.parent / "runs" / name
    assert (copy / "results.json").exists(), f"{rec['run']} is not recorded in {copy}"
    run = load_run(copy)
    assert run["config"]["seed"] == rec["seed"] and run["trainable_params"] == rec["trainable_params"]
    assert {k: v for k, v in rec.items() if k.startswith(("test/", "eval/"))} == \
        {k: v for k, v in run["metrics"].items() if k in rec}, name


def test_icl_tables_rerun_on_the_packed_scorer_are_the_committed_ones():
  """The ICL results re-run on the scorer that packs prompts into rows (2026-12-05, records committed beside the
  tables they check): every metric equal, as the experiments' READMEs say."""
  rt = ROOT / "experiments/icl_rotten_tomatoes/results"
  for mode in ("labels_gold", "labels_random"):
    old, new = (json.loads((rt / d / mode / "results.json").read_text()) for d in ("", "packed_recheck"))
    assert {k: v for k, v in old.items() if k != "wall_time_s"} == {k: v for k, v in new.items() if k != "wall_time_s"}
  assert (rt / "results.md").read_text() == (rt / "packed_recheck" / "results.md").read_text()
  abl = ROOT / "experiments/ablations/results/cpu"
  old, new = (json.loads((abl / d / "summary.json").read_text())["rows"]
              for d in ("icl_corruption", "icl_corruption_packed_recheck"))
  assert len(old) == 5 and [{**r, "run": None} for r in old] == [{**r, "run": None} for r in new]
  hyper = ROOT / "experiments/hyperformer/results/cpu_unseen"
  for s in (0, 1, 2):
    old, new = (json.loads((hyper / d / f"seed={s}_seeds={s}" / "results.json").read_text())
                for d in ("runs", "icl_packed_recheck"))
    assert {k: v for k, v in old.items() if k != "wall_time_s"} == {k: v for k, v in new.items() if k != "wall_time_s"}
