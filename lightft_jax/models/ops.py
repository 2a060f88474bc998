"""Backend-specific numerics behind the model's building blocks, kept apart from the modules that use them.

  linear   x @ w with a hand-written backward pass (2-D matmuls that XLA:CPU's fast matmul library takes);
           every Dense, the tied LM head and the LoRA / adapter / BitFit wrappers call it.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def linear(x: jax.Array, w: jax.Array, transpose: bool = False) -> jax.Array:
  """x [..., in] @ w [in, out] (or @ w.T for w [out, in] when `transpose`), differentiated with plain
  2-D matmuls.

  The backward pass is the standard one written out: dx = g @ w.T, and dw contracts x and g over all
  leading (batch and time) axes as one [in, tokens] @ [tokens, out] product. Autodiff of `jnp.dot` gives
  XLA:CPU a weight-gradient dot with a transposed left operand, which its fast matmul library does not
  take, so it falls back to a generic kernel at about half the speed (experiments/benchmarks/RESULTS.md).
  When w is frozen its gradient is never used and XLA removes it, as with autodiff.
  """
  return jnp.dot(x, w.T if transpose else w)


def _linear_fwd(x, w, transpose):
  return linear(x, w, transpose), (x, w)


def _linear_bwd(transpose, res, g):
  x, w = res
  if transpose:  # w [out, in]
    return jnp.dot(g, w).astype(x.dtype), jnp.einsum("...o,...i->oi", g, x).astype(w.dtype)
  return jnp.dot(g, w.T).astype(x.dtype), jnp.einsum("...i,...o->io", x, g).astype(w.dtype)


linear.defvjp(_linear_fwd, _linear_bwd)
