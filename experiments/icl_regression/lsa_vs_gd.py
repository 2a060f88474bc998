"""A single linear self-attention layer trained on linear regression vs one step of gradient descent
(von Oswald et al. 2023): prediction difference and sensitivity cosine on fresh tasks, written as JSON."""

from __future__ import annotations

import json
from pathlib import Path

from absl import app, flags

from lightft_jax.icl.linear_attention import compare_lsa_with_gd, train_lsa

_OUT = flags.DEFINE_string("out", "experiments/icl_regression/results/lsa_vs_gd.json", "output JSON")
_DIMS = flags.DEFINE_integer("n_dims", 10, "input dimensions (von Oswald et al.: 10)")
_CONTEXT = flags.DEFINE_integer("n_context", 10, "in-context examples (von Oswald et al.: 10)")
_STEPS = flags.DEFINE_integer("steps", 5000, "Adam steps")


def main(_):
  model, losses = train_lsa(_DIMS.value, _CONTEXT.value, steps=_STEPS.value, batch_size=2048, lr=1e-3)
  result = {"n_dims": _DIMS.value, "n_context": _CONTEXT.value, "steps": _STEPS.value, "batch_size": 2048,
            "first_loss": losses[0], "final_loss": losses[-1],
            **compare_lsa_with_gd(model, _DIMS.value, _CONTEXT.value)}
  Path(_OUT.value).parent.mkdir(parents=True, exist_ok=True)
  Path(_OUT.value).write_text(json.dumps(result, indent=2, allow_nan=False))
  print(json.dumps(result, indent=2))


if __name__ == "__main__":
  app.run(main)
