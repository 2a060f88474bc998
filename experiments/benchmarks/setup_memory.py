"""Device memory held at each stage of setting up a training run, before any step:
`python -m experiments.benchmarks.setup_memory --preset=llama-1b`.

Counts the bytes of every live JAX array after building the model, attaching PEFT, `init_state` and
`place_frozen` (lightft_jax.train.steps). Placement must not add a second copy of the frozen weights.
"""

from __future__ import annotations

import argparse

import jax
import optax
from flax import nnx

from experiments.benchmarks.cases import LORA_QV


def live_gib() -> float:
  return sum(a.nbytes for a in jax.live_arrays()) / 2**30


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__)
  p.add_argument("--preset", default="llama-1b")
  p.add_argument("--method", default="lora", help="PEFT method (lora r=8 on q,v; or full, prefix, ...)")
  args = p.parse_args(argv)
  from lightft_jax import peft
  from lightft_jax.models import Transformer, get_preset
  from lightft_jax.train import sharding, steps
  cfg = get_preset(args.preset, dtype="bfloat16", param_dtype="float32")
  model = Transformer(cfg, task="lm", rngs=nnx.Rngs(0))
  peft.apply(model, dict(LORA_QV) if args.method == "lora" else {"method": args.method})
  rows = [("model built, PEFT attached", live_gib())]
  mesh = sharding.make_mesh(devices=jax.devices()[:1])
  prog = steps.build_program(model, peft.trainable_filter(model), optax.adamw(1e-4), kind="lm", mesh=mesh)
  state = steps.init_state(prog, 0)
  rows.append(("after init_state", live_gib()))
  frozen, rest = steps.place_frozen(prog, model)
  rows.append(("after place_frozen", live_gib()))
  print(f"{args.preset}, {args.method}, {jax.devices()[0].device_kind}: live JAX arrays")
  for name, gib in rows:
    print(f"  {name:28s} {gib:7.2f} GiB")
  del state, frozen, rest
  return 0


if __name__ == "__main__":
  raise SystemExit(main())
