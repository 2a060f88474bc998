"""Few-shot classification scoring speed: lightft_jax.icl.scoring.score_choices against the transformers recipe.

Same model (SmolLM2-135M-Instruct, the bundled GGUF dequantised to float32, on both sides), same prompts
("Review: ...\\nSentiment:" after k demonstrations drawn as the few-shot harness draws them, seed 0, encoded
as the tokenizer does: no BOS), same answers (" negative" / " positive", one token each), batch 8.

- ours: `score_choices(model, contexts, [answers] * N, batch_size=8)`: the demonstrations shared by every
  query run once into a KV cache; the queries (after it) are packed end to end into rows that start from that
  cache (segment mask, `--token_budget` token slots per forward pass, not 8 prompts), so no batch pads to its
  longest prompt; one forward pass and the next-token distribution at each query's last token (the LM head
  runs there only). (Before 2026-12-05 the queries after a shared prefix went in length-sorted batches of 8 at
  bucketed lengths; only k=0 was packed.)
- transformers: the plain recipe: sort prompts by length, right pad each batch of 8 to its longest prompt,
  one forward pass, log-softmax of the logits at each row's last real token.
- transformers + prefix cache (`--hf_prefix_cache`): the demonstrations run once into a `DynamicCache`, which
  is copied and repeated over each batch; the batch's suffixes run after it.

Ours and theirs alternate after warm-up (ABBA) in one process pinned to `--cpu_threads` cores; with
`--isolate=N` each side runs in a process of its own instead (N rounds, the order flipping every round, every
round's samples pooled; OUT/sides/ keeps each process's samples and scores), so that neither library's worker
threads share a process or its idle time with the other's. Writes
OUT/results.json (samples, medians, speed-ups, log-prob agreement, device, versions, date, command) and
OUT/results.md.

  python -m experiments.benchmarks.icl_fewshot --data=DIR --out=experiments/benchmarks/results/cpu_icl
--data=DIR reads DIR/train.jsonl and DIR/test.jsonl (`python -m experiments.icl_rotten_tomatoes.run
--export=DIR`); without it the prepared TFDS rotten_tomatoes dataset is read.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shlex
import sys
import time
from pathlib import Path


def load_examples(data: str, n_queries: int):
  if data:
    read = lambda s: [json.loads(line) for line in (Path(data) / f"{s}.jsonl").read_text().splitlines()]
    pool, queries = read("train"), read("test")[:n_queries]
  else:
    from lightft_jax import data as d
    task = d.get_task("rotten_tomatoes")
    pool, queries = task.examples("train"), task.examples("test", limit=n_queries)
  return pool, queries


def build_prompts(tokenizer, pool, queries, k: int, seed: int = 0):
  """Token ids of N prompts with the k demonstrations the harness shares across queries for (seed, k)."""
  import numpy as np
  from lightft_jax.icl.fewshot import PromptEncoder
  from lightft_jax.icl.prompts import PromptTemplate, select_demonstrations
  template = PromptTemplate("Review: {text}\nSentiment:", verbalizers=("negative", "positive"))
  rng = np.random.default_rng([seed, k])
  demos = [pool[i] for i in select_demonstrations("random", pool, k, rng)]
  enc = PromptEncoder(tokenizer)
  contexts = [enc.context(template.build(demos, q)) for q in queries]
  answers = [enc.answer(a) for a in template.choices()]
  return contexts, answers


def _hf_batches(contexts, answers, batch_size, pad_id, skip=0, device=None):
  """The plain recipe's batches: prompts sorted by length, groups of batch_size, each prompt's tokens after the
  first `skip` right-padded to the group's longest -> (rows, ids, mask) per batch, on `device` (the model's); and
  a function that writes a batch's log-probs of the (one-token) answers from the logits at each row's last real
  token into [N,C] out (on the host: on a GPU each batch's copy waits for its forward pass)."""
  import torch
  order = sorted(range(len(contexts)), key=lambda i: len(contexts[i]))
  choice_ids = torch.tensor([a[0] for a in answers])
  out = torch.empty(len(contexts), len(answers), dtype=torch.float32)
  dev = device or torch.device("cpu")

  def batches():
    for s in range(0, len(order), batch_size):
      rows = order[s:s + batch_size]
      seqs = [contexts[i][skip:] for i in rows]
      t = max(map(len, seqs))
      ids = torch.full((len(rows), t), pad_id, dtype=torch.long)
      mask = torch.zeros((len(rows), t), dtype=torch.long)
      for r, x in enumerate(seqs):
        ids[r, :len(x)] = torch.tensor(x)
        mask[r, :len(x)] = 1
      yield rows, ids.to(dev), mask.to(dev)

  def put(rows, logits, mask):
    last = logits[torch.arange(len(rows), device=logits.device), mask.sum(-1) - 1].float()
    out[rows] = torch.log_softmax(last, -1)[:, choice_ids.to(logits.device)].cpu()
  return batches(), put, out


def hf_plain(hf, contexts, answers, batch_size, pad_id):
  """[N,C] log-probs: sort by length, right pad, one forward pass, next-token log-probs at the last token."""
  import torch
  batches, put, out = _hf_batches(contexts, answers, batch_size, pad_id, device=hf.device)
  with torch.inference_mode():
    for rows, ids, mask in batches:
      put(rows, hf(input_ids=ids, attention_mask=mask).logits, mask)
  return out.numpy()


def hf_prefix_cache(hf, contexts, answers, batch_size, pad_id):
  """The plain recipe after the shared prefix, which runs once into a DynamicCache copied per batch."""
  import copy
  import torch
  from lightft_jax.icl.scoring import common_prefix_length
  p = min(common_prefix_length(contexts), min(map(len, contexts)) - 1)
  if p < 1:
    return hf_plain(hf, contexts, answers, batch_size, pad_id)
  with torch.inference_mode():
    prefix_cache = hf(input_ids=torch.tensor([contexts[0][:p]], device=hf.device), use_cache=True).past_key_values
  batches, put, out = _hf_batches(contexts, answers, batch_size, pad_id, skip=p, device=hf.device)
  with torch.inference_mode():
    for rows, ids, suffix_mask in batches:
      mask = torch.cat([torch.ones((len(rows), p), dtype=torch.long, device=hf.device), suffix_mask], 1)
      cache = copy.deepcopy(prefix_cache)
      cache.batch_repeat_interleave(len(rows))
      positions = (p + torch.arange(ids.shape[1], device=hf.device))[None].expand(len(rows), ids.shape[1])
      logits = hf(input_ids=ids, attention_mask=mask, past_key_values=cache, position_ids=positions,
                  use_cache=True).logits
      put(rows, logits, suffix_mask)
  return out.numpy()


ONEDNN_FLAG = "--xla_cpu_experimental_onednn_custom_call=true"


def parse_args(argv):
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--out", required=True)
  p.add_argument("--data", default="", help="folder with train.jsonl / test.jsonl (else TFDS rotten_tomatoes)")
  p.add_argument("--ks", default="0,4,8")
  p.add_argument("--queries", type=int, default=96, help="test prompts per timed call")
  p.add_argument("--batch_size", type=int, default=8)
  p.add_argument("--repeats", type=int, default=3)
  p.add_argument("--warmup", type=int, default=1)
  p.add_argument("--cpu_threads", type=int, default=2, help="cores this process is pinned to (0: all)")
  p.add_argument("--hf_prefix_cache", action="store_true", help="also time transformers with a prefix cache")
  p.add_argument("--token_budget", type=int, default=2048, help="ours, packed rows: token slots per forward pass")
  p.add_argument("--gap_s", type=float, default=0.0,
                 help="untimed idle seconds before each timed call (one library's spinning worker threads "
                      "settle before the other's call)")
  p.add_argument("--isolate", type=int, default=0,
                 help="N > 0: time each side in its own process (only its library runs there), N rounds, the "
                      "order of the sides flipping every round; the samples of all rounds are pooled")
  p.add_argument("--side", default="", help=argparse.SUPPRESS)  # one side only: a child of --isolate
  p.add_argument("--quiet_load", type=float, default=0.0,
                 help="before timing, wait (up to --quiet_wait_s) until the 1-min load average is below this")
  p.add_argument("--quiet_wait_s", type=float, default=1200.0)
  p.add_argument("--scan_layers", type=int, default=1, help="our model scans over layers (1) or unrolls (0)")
  p.add_argument("--device", choices=("cpu", "gpu"), default="cpu",
                 help="gpu: both sides on the first GPU (JAX's default backend, torch's cuda:0), nothing pinned")
  p.add_argument("--tf32", action="store_true",
                 help="gpu: float32 matmuls in TF32 on both sides (JAX's default there; torch's allow_tf32); "
                      "without it both run full float32, as on the CPU")
  p.add_argument("--model", choices=("gguf", "random"), default="gguf",
                 help="random: SmolLM2-135M's shape with random weights (seed 0) on both sides, for a machine "
                      "without the GGUF (the timings hold; accuracies are chance)")
  p.add_argument("--prompts", default="", help="read the prompts' token ids from this file (--export_prompts)")
  p.add_argument("--export_prompts", default="",
                 help="write the prompts' token ids of --ks and --queries to this file and stop")
  p.add_argument("--xla_onednn", action="store_true",
                 help=f"ours: XLA:CPU's matmuls through oneDNN (XLA_FLAGS += {ONEDNN_FLAG}), the library "
                      "PyTorch's CPU matmuls use")
  return p.parse_args(argv)


# SmolLM2-135M-Instruct's shape (the bundled GGUF's llama config; a test checks they agree), for --model=random
SMOLLM2_135M = dict(vocab_size=49152, hidden_size=576, intermediate_size=1536, num_hidden_layers=30,
                    num_attention_heads=9, num_key_value_heads=3, head_dim=64, max_position_embeddings=8192,
                    rope_theta=100000.0, rms_norm_eps=1e-5, tie_word_embeddings=True, bos_token_id=1,
                    eos_token_id=2, pad_token_id=2)


def prompt_sets(args) -> dict:
  """{"pad_id", "ks": {k: {"contexts", "answers", "gold"}}}: the token ids every side scores, built from the
  tokenizer and data (`build_prompts`), or read from `--prompts` (written by `--export_prompts`: a machine without
  the GGUF's tokenizer or the dataset runs the same prompts)."""
  if args.prompts:
    sets = json.loads(Path(args.prompts).read_text())
    return {"pad_id": sets["pad_id"], "ks": {int(k): v for k, v in sets["ks"].items()}}
  from lightft_jax.models import assets
  from lightft_jax.models.hf import load_tokenizer
  tok = load_tokenizer(assets.smollm2_gguf())
  pool, queries = load_examples(args.data, args.queries)
  ks = {}
  for k in [int(x) for x in args.ks.split(",")]:
    contexts, answers = build_prompts(tok, pool, queries, k)
    ks[k] = {"contexts": contexts, "answers": answers, "gold": [int(q["label"]) for q in queries]}
  return {"pad_id": tok.pad_token_id, "ks": ks}


def load_models(args, names: list[str]):
  """(ours, transformers) as `names` need them, float32, transformers on `--device`: the bundled GGUF
  dequantised, or (`--model=random`) SmolLM2-135M's shape with random weights (seed 0) shared through a
  safetensors checkpoint, the same work for a machine without the GGUF."""
  import tempfile
  import torch
  import transformers as T
  from lightft_jax.models import assets
  from lightft_jax.models.hf import from_pretrained
  with tempfile.TemporaryDirectory() as tmp:
    if args.model == "random":
      torch.manual_seed(0)
      T.LlamaForCausalLM(T.LlamaConfig(**SMOLLM2_135M)).save_pretrained(tmp, safe_serialization=True)
      ours_src, hf_src = {"directory": tmp}, {"pretrained_model_name_or_path": tmp}
    else:
      path = assets.smollm2_gguf()
      ours_src, hf_src = {"directory": path}, {"pretrained_model_name_or_path": path.parent, "gguf_file": path.name}
    ours = from_pretrained(**ours_src, task="lm", scan_layers=bool(args.scan_layers)) if "ours" in names else None
    hf = None
    if any(n.startswith("transformers") for n in names):
      if args.cpu_threads > 0 and args.device == "cpu":
        torch.set_num_threads(args.cpu_threads)
      hf = T.AutoModelForCausalLM.from_pretrained(**hf_src, dtype=torch.float32).eval()
      hf = hf.to("cuda" if args.device == "gpu" else "cpu")
  return ours, hf


def measure(args, names: list[str]) -> tuple[dict, dict]:
  """In this process: for every k, the timed samples, scores and prompt facts of the sides `names`; and the
  device. Only the libraries of those sides load their model."""
  import numpy as np
  from experiments.benchmarks.measure import device_info
  from experiments.benchmarks.timing import time_alternating
  from lightft_jax.icl.scoring import common_prefix_length, score_choices
  sets = prompt_sets(args)
  pad_id = sets["pad_id"]
  ours, hf = load_models(args, names)
  out = {}
  for k, prompts in sets["ks"].items():
    contexts, answers = prompts["contexts"], prompts["answers"]
    results = {}
    every = {
        "ours": lambda ctxs: np.stack(score_choices(ours, ctxs, [answers] * len(ctxs), batch_size=args.batch_size,
                                                    pad_id=pad_id, token_budget=args.token_budget)[0]),
        "transformers": lambda ctxs: hf_plain(hf, ctxs, answers, args.batch_size, pad_id),
        "transformers_prefix_cache": lambda ctxs: hf_prefix_cache(hf, ctxs, answers, args.batch_size, pad_id)}
    sides = {n: every[n] for n in names}
    fns = {name: (lambda name=name, fn=fn: results.__setitem__(name, fn(contexts))) for name, fn in sides.items()}
    print(f"k={k}: timing {list(fns)} on {len(contexts)} prompts", flush=True)
    first_call_s = None
    for _ in range(args.warmup):  # ours compiles its shapes on the full call; transformers warms on one batch
      for name, fn in sides.items():
        t0 = time.perf_counter()
        fn(contexts if name == "ours" else contexts[:args.batch_size])
        if name == "ours" and first_call_s is None:
          first_call_s = time.perf_counter() - t0
    samples = time_alternating(fns, repeats=args.repeats, warmup=0, inner=1, gap_s=args.gap_s)
    out[k] = {"samples": samples, "scores": {n: np.asarray(v).tolist() for n, v in results.items()},
              "lens": [len(c) for c in contexts], "shared": common_prefix_length(contexts),
              "gold": prompts["gold"], "first_call_s": first_call_s}
  return out, device_info()


def isolated(args, argv: list[str], names: list[str]) -> tuple[dict, dict]:
  """`measure` of each side in a child process of its own, args.isolate rounds (A B, B A, ...); the samples of
  every round pooled, the scores of the last (each round's scores are checked equal)."""
  import subprocess
  merged: dict = {}
  device = None
  for r in range(args.isolate):
    for name in (names if r % 2 == 0 else names[::-1]):
      out = Path(args.out) / "sides" / f"round{r}_{name}"
      subprocess.run([sys.executable, "-m", "experiments.benchmarks.icl_fewshot", *argv, "--isolate=0",
                      f"--side={name}", f"--out={out}", "--quiet_load=0"], check=True)
      got = json.loads((out / "side.json").read_text())
      device = got["device"]
      for k, m in got["ks"].items():
        into = merged.setdefault(int(k), {**m, "samples": {}, "scores": {}})
        into["samples"].setdefault(name, []).extend(m["samples"][name])
        if name in into["scores"] and into["scores"][name] != m["scores"][name]:
          raise SystemExit(f"k={k}: {name}'s scores differ between rounds")
        into["scores"][name] = m["scores"][name]
        if name == "ours":
          into["first_call_s"] = m["first_call_s"]
  return merged, device


def row_of(k: int, m: dict) -> dict:
  import numpy as np
  from experiments.benchmarks.timing import summarize
  stats = {n: summarize(v) for n, v in m["samples"].items()}
  scores = {n: np.asarray(v) for n, v in m["scores"].items()}
  gold, n = np.asarray(m["gold"]), len(m["lens"])
  row = {"k": k, "queries": n, "prompt_tokens_mean": float(np.mean(m["lens"])),
         "prompt_tokens_max": int(max(m["lens"])), "shared_prefix_tokens": m["shared"],
         "ours_first_call_s": m["first_call_s"], "samples_s": m["samples"], "stats": stats,
         "s_per_100": {name: 100 * s["median_s"] / n for name, s in stats.items()},
         "speedup_vs_transformers": stats["transformers"]["median_s"] / stats["ours"]["median_s"],
         "max_abs_logprob_diff": float(np.abs(scores["ours"] - scores["transformers"]).max()),
         "acc_ours": float(np.mean(scores["ours"].argmax(-1) == gold)),
         "acc_transformers": float(np.mean(scores["transformers"].argmax(-1) == gold))}
  if "transformers_prefix_cache" in stats:
    row["speedup_vs_transformers_prefix_cache"] = (stats["transformers_prefix_cache"]["median_s"]
                                                   / stats["ours"]["median_s"])
    row["max_abs_logprob_diff_prefix_cache"] = float(np.abs(scores["ours"]
                                                            - scores["transformers_prefix_cache"]).max())
  return row


def main(argv=None) -> int:
  argv = sys.argv[1:] if argv is None else list(argv)
  args = parse_args(argv)
  if args.xla_onednn:  # before jax starts its backend
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " " + ONEDNN_FLAG).strip()
  command = "python -m experiments.benchmarks.icl_fewshot " + shlex.join(argv)
  if args.export_prompts:  # with the command that made them: a run reading them records where they came from
    Path(args.export_prompts).write_text(json.dumps({**prompt_sets(args), "command": command}))
    return 0
  if args.device == "gpu":
    import jax
    import torch
    jax.config.update("jax_default_matmul_precision", "tensorfloat32" if args.tf32 else "highest")
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = args.tf32
  elif args.cpu_threads > 0:
    os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = str(args.cpu_threads)
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    from experiments.benchmarks.run import pin_cpus
    pin_cpus("cpu", args.cpu_threads)
  from experiments.benchmarks import report
  from lightft_jax.models import assets

  waited = 0.0
  while args.quiet_load and os.getloadavg()[0] >= args.quiet_load and waited < args.quiet_wait_s:
    time.sleep(30)
    waited += 30
  loadavg_start = os.getloadavg()
  print(f"load average at start {loadavg_start} (waited {waited:.0f} s)", flush=True)
  date = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
  names = ["ours", "transformers"] + (["transformers_prefix_cache"] if args.hf_prefix_cache else [])
  out = Path(args.out)
  out.mkdir(parents=True, exist_ok=True)
  if args.side:
    ks, device = measure(args, [args.side])
    (out / "side.json").write_text(json.dumps({"ks": ks, "device": device}))
    return 0
  ks, device = isolated(args, argv, names) if args.isolate else measure(args, names)
  rows = []
  for k, m in ks.items():
    rows.append(row_of(k, m))
    print(json.dumps({x: rows[-1][x] for x in rows[-1] if x not in ("samples_s", "stats")}), flush=True)

  meta = {"command": command, "date": date, "device": device,
          "versions": report.versions("jax", "jaxlib", "flax", "optax", "torch", "transformers", "peft"),
          "host": platform.node(), "cpus": os.cpu_count(), "cpu_threads": args.cpu_threads,
          "loadavg_start": loadavg_start, "loadavg_end": os.getloadavg(), "quiet_load": args.quiet_load,
          "quiet_wait_s": waited, "gap_s": args.gap_s, "isolate": args.isolate, "batch_size": args.batch_size,
          "token_budget": args.token_budget, "repeats": args.repeats,
          "warmup": args.warmup, "scan_layers": bool(args.scan_layers),
          # --model=random / --prompts: a machine without the GGUF or the dataset, so neither is looked up here
          "model": "SmolLM2-135M's shape, random weights" if args.model == "random" else assets.smollm2_gguf().name,
          "xla_flags": os.environ.get("XLA_FLAGS", ""), "weights": args.model,
          "matmul": "tf32" if args.tf32 else "float32", "prompts": args.prompts,
          "data": (f"the prompts of `{json.loads(Path(args.prompts).read_text()).get('command')}`" if args.prompts
                   else args.data or "tfds:rotten_tomatoes")}
  (out / "results.json").write_text(json.dumps({**meta, "rows": rows}, indent=2))
  md = write_markdown(meta, rows)
  (out / "results.md").write_text(md)
  print(md)
  return 0


def _load_line(meta: dict) -> str:
  start, end = meta.get("loadavg_start"), meta.get("loadavg_end")
  fmt = lambda x: "n/a" if x is None else " / ".join(f"{v:.2f}" for v in x)
  line = f"Load average (1 / 5 / 15 min) at start {fmt(start)}, at end {fmt(end)}."
  if start is not None and meta.get("quiet_load") and start[0] >= meta["quiet_load"]:
    line += (f" The machine never got below {meta['quiet_load']} within {meta['quiet_wait_s']:.0f} s: it was "
             "shared with other jobs during this run, so the times are slower and noisier than on an idle machine.")
  return line


def write_markdown(meta: dict, rows: list[dict]) -> str:
  sides = list(rows[0]["s_per_100"])
  head = ("| k | prompt tokens mean / max | shared prefix | " + " | ".join(f"{s} s/100 prompts" for s in sides)
          + " | speed-up vs transformers | max abs log-prob diff | acc ours / transformers |")
  lines = [f"`{meta['command']}`", "",
           f"{meta['date']}, {meta['device'].get('device_kind')}, "
           + (f"{meta['cpu_threads']} cores pinned, " if meta["device"].get("platform") == "cpu" else
              f"transformers on {meta['device'].get('torch_device')}, {meta.get('matmul', 'float32')} matmuls, ")
           + ("random weights of SmolLM2-135M's shape, " if meta.get("weights") == "random" else "")
           + f"batch {meta['batch_size']} (ours: packed rows, {meta.get('token_budget')} token slots per forward "
           f"pass, after the shared prefix's cache where there is one), median of "
           f"{meta['repeats'] * max(1, meta.get('isolate', 0))} samples after "
           f"{meta['warmup']} warm-up" + (f" (each side in its own processes, {meta['isolate']} rounds of "
                                          f"{meta['repeats']})" if meta.get("isolate") else "") + "; "
           + ", ".join(f"{k} {v}" for k, v in meta["versions"].items())
           + (f"; XLA_FLAGS `{meta['xla_flags']}`" if meta.get("xla_flags") else ""), "",
           _load_line(meta), "",
           head, "|" + "---|" * (head.count("|") - 1)]
  for r in rows:
    cells = [str(r["k"]), f"{r['prompt_tokens_mean']:.0f} / {r['prompt_tokens_max']}", str(r["shared_prefix_tokens"])]
    cells += [f"{r['s_per_100'][s]:.2f} (±{100 * r['stats'][s]['iqr_rel'] / 2:.0f}%)" for s in sides]
    sp = f"**{r['speedup_vs_transformers']:.2f}**"
    if "speedup_vs_transformers_prefix_cache" in r:
      sp += f" ({r['speedup_vs_transformers_prefix_cache']:.2f} vs prefix cache)"
    cells += [sp, f"{r['max_abs_logprob_diff']:.1e}", f"{r['acc_ours']:.3f} / {r['acc_transformers']:.3f}"]
    lines.append("| " + " | ".join(cells) + " |")
  return "\n".join(lines) + "\n"


if __name__ == "__main__":
  sys.exit(main())
