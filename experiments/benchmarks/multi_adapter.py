"""Many LoRA adapters in one batch: a mixed batch (one adapter per example) against a one-adapter batch.

A decoder (tiny-llama widened to d_model 256, 4 layers) with N named rank-r LoRAs on q and v; batch B of
length T; example e uses adapter e mod N (ctx["adapter_ids"]). Timed, jitted, alternating after warm-up
(experiments/benchmarks/timing.py), in one process on the CPU:

- fwd_bwd: LM loss and its gradient with respect to every LoRA factor (a training step without the update);
- generate: `lightft_jax.models.generate`, greedy, B prompts of length T, `--new` tokens;
- modes: "single" (one adapter, no per-example choice: the baseline), "gather" (lora.py's default for mixed
  batches: each example's factors gathered) and "mask" (every adapter on every example, weighted 0/1: the
  path before gathering), for N in --adapters;
- stacking: the gathered path stacks the named adapters at call time; "layer" times one LoRA Dense update
  (forward + backward) with that stacking against factors already stored stacked [N, in, r], at the largest N;
- HF peft (torch CPU): the same shapes on `transformers.LlamaForCausalLM` + peft LoRA, inference forward of a
  one-adapter batch against `model(..., adapter_names=[...])` (peft's mixed-batch inference; it has no
  mixed-batch training), and `generate(..., adapter_names=...)`.

  python -m experiments.benchmarks.multi_adapter --out=experiments/benchmarks/results/multi_adapter_cpu
writes OUT/results.json (figures, device, versions, date, command, load averages) and OUT/results.md.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shlex
import sys
from pathlib import Path

from experiments.benchmarks import report
from experiments.benchmarks.timing import summarize, time_alternating

MODEL = dict(d_model=256, n_layers=4, n_heads=4, n_kv_heads=2, d_ff=688, vocab_size=1024, max_positions=512)


def build(n: int, r: int, seed: int = 0):
  import jax
  from flax import nnx
  from lightft_jax import peft
  from lightft_jax.models import Transformer, get_preset
  from lightft_jax.peft.lora import LoraUnit
  model = Transformer(get_preset("tiny-llama", **MODEL), task="lm", rngs=nnx.Rngs(seed))
  peft.apply(model, [{"method": "lora", "r": r, "targets": "qv", "name": f"a{i}"} for i in range(n)])
  key = jax.random.key(seed + 1)
  for _, u in nnx.iter_modules(model):
    if isinstance(u, LoraUnit):
      key, sub = jax.random.split(key)
      u.lora_b[...] = 0.02 * jax.random.normal(sub, u.lora_b.shape)
  return model


def jax_fns(args) -> tuple[dict, dict]:
  """{label: fwd+bwd callable}, {label: generate callable} for every mode and N."""
  import jax
  import jax.numpy as jnp
  import numpy as np
  import optax
  from flax import nnx
  from lightft_jax.models import generate
  from lightft_jax.peft.lora import LoraParam, set_mixed_batch

  rs = np.random.RandomState(0)
  ids = jnp.asarray(rs.randint(3, MODEL["vocab_size"], (args.batch, args.seq)), jnp.int32)
  prompts = ids[:, :args.prompt]

  def train_fn(model, ctx):
    graphdef, params, rest = nnx.split(model, LoraParam, ...)

    @jax.jit
    def step(p, ids, ctx):
      def loss(p):
        logits = nnx.merge(graphdef, p, rest)(ids, ctx=ctx)["logits"]
        return optax.softmax_cross_entropy_with_integer_labels(logits[:, :-1], ids[:, 1:]).mean()
      return jax.value_and_grad(loss)(p)

    return lambda: jax.block_until_ready(step(params, ids, ctx))

  def gen_fn(model, ctx):
    return lambda: jax.block_until_ready(generate(model, prompts, max_new_tokens=args.new, ctx=ctx))

  train, gen = {}, {}
  single = build(1, args.r)
  train["single"], gen["single"] = train_fn(single, None), gen_fn(single, None)
  for n in args.adapters:
    model = build(n, args.r)
    ctx = {"adapter_ids": jnp.arange(args.batch, dtype=jnp.int32) % n}
    for mode in args.modes:
      set_mixed_batch(model, mode)
      train[f"{mode}/{n}"] = train_fn(model, ctx)
      gen[f"{mode}/{n}"] = gen_fn(model, ctx)
      model = build(n, args.r) if mode != args.modes[-1] else model  # each mode its own (static) graph
  return train, gen


def layer_fns(args) -> dict:
  """One LoRA Dense update, fwd + bwd: adapters stacked at call time vs stored stacked, at the largest N."""
  import jax
  import jax.numpy as jnp
  from lightft_jax.peft.lora import gathered_lora_delta
  n, d, r = max(args.adapters), MODEL["d_model"], args.r
  k = jax.random.split(jax.random.key(0), 3)
  x = jax.random.normal(k[0], (args.batch, args.seq, d))
  a = list(jax.random.normal(k[1], (n, d, r)) * 0.05)
  b = list(jax.random.normal(k[2], (n, r, d)) * 0.05)
  local = jnp.arange(args.batch, dtype=jnp.int32) % n
  scale = jnp.ones((args.batch,), jnp.float32)

  @jax.jit
  def per_name(a, b, x):
    return jax.grad(lambda ab: gathered_lora_delta(x, jnp.stack(ab[0]), jnp.stack(ab[1]), scale, local).sum())((a, b))

  @jax.jit
  def stacked(a, b, x):
    return jax.grad(lambda ab: gathered_lora_delta(x, ab[0], ab[1], scale, local).sum())((a, b))

  sa, sb = jnp.stack(a), jnp.stack(b)
  return {f"stack_at_call/{n}": lambda: jax.block_until_ready(per_name(a, b, x)),
          f"stored_stacked/{n}": lambda: jax.block_until_ready(stacked(sa, sb, x))}


def hf_fns(args) -> dict:
  """HF peft on the same shapes: one-adapter batch vs adapter_names mixed batch (inference forward, generate)."""
  import torch
  from peft import LoraConfig, get_peft_model
  from transformers import LlamaConfig, LlamaForCausalLM
  torch.manual_seed(0)
  cfg = LlamaConfig(vocab_size=MODEL["vocab_size"], hidden_size=MODEL["d_model"], intermediate_size=MODEL["d_ff"],
                    num_hidden_layers=MODEL["n_layers"], num_attention_heads=MODEL["n_heads"],
                    num_key_value_heads=MODEL["n_kv_heads"], max_position_embeddings=MODEL["max_positions"])
  ids = torch.randint(3, MODEL["vocab_size"], (args.batch, args.seq))
  prompts = ids[:, :args.prompt]
  out = {}

  def lora_cfg():
    return LoraConfig(r=args.r, lora_alpha=args.r, target_modules=["q_proj", "v_proj"], init_lora_weights=False)

  def fwd(model, **kw):
    def f():
      with torch.inference_mode():
        model(input_ids=ids, **kw)
    return f

  def gen(model, **kw):
    def f():
      with torch.inference_mode():
        model.generate(input_ids=prompts, attention_mask=torch.ones_like(prompts), max_new_tokens=args.new,
                       min_new_tokens=args.new, do_sample=False, pad_token_id=0, **kw)
    return f

  single = get_peft_model(LlamaForCausalLM(cfg), lora_cfg(), adapter_name="a0").eval()
  out["fwd"], out["gen"] = {"single": fwd(single)}, {"single": gen(single)}
  for n in args.adapters:
    model = get_peft_model(LlamaForCausalLM(cfg), lora_cfg(), adapter_name="a0")
    for i in range(1, n):
      model.add_adapter(f"a{i}", lora_cfg())
    model.eval()  # peft takes adapter_names in eval mode only
    names = [f"a{e % n}" for e in range(args.batch)]
    out["fwd"][f"adapter_names/{n}"] = fwd(model, adapter_names=names)
    out["gen"][f"adapter_names/{n}"] = gen(model, adapter_names=names)
  return out


def table(samples: dict, base: str) -> list[dict]:
  ref = summarize(samples[base])["median_s"]
  rows = []
  for label, s in samples.items():
    st = summarize(s)
    mode, _, n = label.partition("/")
    rows.append({"label": label, "mode": mode, "n_adapters": int(n) if n else 1, "median_ms": 1e3 * st["median_s"],
                 "p25_ms": 1e3 * st["p25_s"], "p75_ms": 1e3 * st["p75_s"], "vs_single": st["median_s"] / ref,
                 "n_samples": st["n"]})
  return rows


def main(argv=None):
  ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  ap.add_argument("--out", required=True)
  ap.add_argument("--batch", type=int, default=16)
  ap.add_argument("--seq", type=int, default=128)
  ap.add_argument("--prompt", type=int, default=128, help="generation prompt length (<= seq)")
  ap.add_argument("--new", type=int, default=32, help="generated tokens")
  ap.add_argument("--r", type=int, default=8)
  ap.add_argument("--adapters", type=int, nargs="+", default=[1, 8, 64])
  ap.add_argument("--modes", nargs="+", default=["gather", "mask"])
  ap.add_argument("--repeats", type=int, default=7)
  ap.add_argument("--gen_repeats", type=int, default=3)
  ap.add_argument("--warmup", type=int, default=1)
  ap.add_argument("--torch_threads", type=int, default=2)
  ap.add_argument("--skip_hf", action="store_true")
  args = ap.parse_args(argv)
  out = Path(args.out)
  out.mkdir(parents=True, exist_ok=True)
  load = [os.getloadavg()]

  import jax
  train, gen = jax_fns(args)
  res = {"fwd_bwd": table(time_alternating(train, repeats=args.repeats, warmup=args.warmup, inner=1), "single")}
  load.append(os.getloadavg())
  res["generate"] = table(time_alternating(gen, repeats=args.gen_repeats, warmup=args.warmup, inner=1), "single")
  load.append(os.getloadavg())
  layer = layer_fns(args)
  res["layer_stacking"] = table(time_alternating(layer, repeats=args.repeats, warmup=args.warmup, inner=3),
                                next(iter(layer)).replace("stack_at_call", "stored_stacked"))
  if not args.skip_hf:
    import torch
    torch.set_num_threads(args.torch_threads)
    hf = hf_fns(args)
    res["hf_forward"] = table(time_alternating(hf["fwd"], repeats=args.repeats, warmup=args.warmup, inner=1), "single")
    load.append(os.getloadavg())
    res["hf_generate"] = table(time_alternating(hf["gen"], repeats=args.gen_repeats, warmup=args.warmup, inner=1),
                               "single")
    load.append(os.getloadavg())

  meta = {"command": "python -m experiments.benchmarks.multi_adapter " + " ".join(shlex.quote(a) for a in
                                                                                   (argv or sys.argv[1:])),
          "date_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
          "device": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores visible, "
                    f"jax backend {jax.default_backend()}",
          "versions": report.versions("jax", "jaxlib", "flax", "numpy", "torch", "transformers", "peft"),
          "load_averages_1_5_15": load, "model": MODEL,
          "shapes": {"batch": args.batch, "seq": args.seq, "prompt": args.prompt, "new_tokens": args.new,
                     "lora_r": args.r, "lora_targets": "q, v", "adapters": args.adapters}}
  (out / "results.json").write_text(json.dumps({**meta, "results": res}, indent=1) + "\n")
  (out / "results.md").write_text(markdown(meta, res))
  print((out / "results.md").read_text())


def markdown(meta: dict, res: dict) -> str:
  titles = {"fwd_bwd": "lightft_jax: LM loss + gradient of every LoRA factor (one training step, no update)",
            "generate": "lightft_jax: `models.generate`, greedy",
            "layer_stacking": "lightft_jax: one LoRA Dense update (fwd + bwd), adapters stacked at call time vs "
                              "stored stacked",
            "hf_forward": "HF peft (torch CPU): inference forward, `adapter_names` mixed batch vs one adapter",
            "hf_generate": "HF peft (torch CPU): `generate(..., adapter_names=...)` vs one adapter"}
  s = meta["shapes"]
  lines = ["# Many LoRA adapters in one batch (CPU)", "",
           f"Command: `{meta['command']}`  ", f"Date (UTC): {meta['date_utc']}  ", f"Device: {meta['device']}  ",
           "Versions: " + ", ".join(f"{k} {v}" for k, v in meta["versions"].items()) + "  ",
           f"Model: decoder {meta['model']}; LoRA r={s['lora_r']} on {s['lora_targets']}; batch {s['batch']}, "
           f"seq {s['seq']}; generation: prompt {s['prompt']}, {s['new_tokens']} new tokens. Example e uses "
           "adapter e mod N.", "",
           "Load averages (1, 5, 15 min) at the start and after each part (the benchmark itself keeps the "
           f"cores busy, so about 2 means nothing else ran): "
           f"{[tuple(round(v, 1) for v in l) for l in meta['load_averages_1_5_15']]}. Timings alternate between "
           "the compared functions in one process, so drift hits them alike; read the ratios.", "",
           "Modes: single = one adapter, no per-example choice (the baseline); gather = mixed batch, each "
           "example's factors gathered (the default); mask = mixed batch, every adapter on every example, "
           "weighted 0/1 (the path before); adapter_names = HF peft's mixed-batch inference.", ""]
  for key, rows in res.items():
    lines += [f"## {titles[key]}", "", "| mode | adapters | median ms | p25 | p75 | vs single |", "|---|---|---|---|---|---|"]
    lines += [f"| {r['mode']} | {r['n_adapters']} | {r['median_ms']:.1f} | {r['p25_ms']:.1f} | {r['p75_ms']:.1f} | "
              f"{r['vs_single']:.2f}x |" for r in rows]
    lines.append("")
  return "\n".join(lines)


if __name__ == "__main__":
  main()
