"""Quantized frozen Dense kernels (QLoRA-style base): blockwise absmax int8, NF4 (optional double quantization) and
4-bit affine blocks (GGUF Q4_1).

A quantized Dense keeps, instead of its float kernel, a `QuantizedKernel` module whose arrays are
`QuantizedWeight` variables (not `nnx.Param`, so neither PEFT's trainable filter nor the train step ever
differentiates or updates them). The matmul dequantizes inside the jitted computation: the float matrix is a
temporary of the forward pass and is recomputed, not stored, for the backward pass (`jax.checkpoint`).

Layout, as in bitsandbytes: the kernel is stored in torch Linear layout W [out, in]; every row is cut into
blocks of `block_size` (64) consecutive input weights (a last partial block is zero-padded), each with one
float32 absmax. Shapes, with nb = ceil(in / block_size):
  int8   codes int8 [out, nb, block]     q = round(w / s) (half away from zero), s = absmax / 127; w ~ q * s.
                                         (GGUF Q8_0 is exactly this with block 32 and a float16 s.)
  nf4    codes uint8 [out, nb, block/2]  the index of the nearest of the 16 NF4 levels (QLoRA / bitsandbytes
                                         table) to w / absmax, two per byte, the first in the high nibble.
  q4_1   codes uint8 [out, nb, block/2]  q in 0..15, packed as nf4; w ~ q * d + m with d = (max - min) / 15 and
         minimum [out, nb] (m)            m = min of the block, q = trunc((w - m) / d + 0.5) as ggml's
                                         quantize_row_q4_1 (GGUF Q4_1 is this with block 32, float16 d and m;
                                         GGUF Q4_0, w = d * (q - 8), is this with m = -8 d).
  scale  float32 [out, nb] (int8: s, nf4: absmax), or with `double_quant` (QLoRA): the scales minus their
         mean (`scale_offset` [1]) in blocks of 256 (`scale_scale` float32 [nb2]) coded as uint8 indices into
         bitsandbytes' signed 8-bit dynamic map (`scale_codes` [nb2, 256]).
Scanned stacks keep their leading layer axis on every array. Bytes per weight: int8 1.06, nf4 0.56,
nf4 + double quantization 0.52, q4_1 0.63 at block 32 with float16 d and m (fp32: 4).

`quantize_model(model, "nf4")` converts the Dense layers inside the blocks (attention and MLP projections;
not the pooler, heads or lm_head, which stay float like QLoRA's lm_head) of any Transformer;
`models.from_pretrained(..., quantize=...)` calls it after loading.

Written here rather than with `qwix` because qwix is not installed here (nor in requirements.txt), and the formats
to match exactly (bitsandbytes NF4 with double quantization, GGUF Q8_0 / Q4_1 / Q4_0 blocks, kept as they are
read) take ~150 lines of jnp.
"""

from __future__ import annotations

import dataclasses
import functools
import re

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from lightft_jax.models.extensions import axis_names
from lightft_jax.models.ops import linear

SCHEMES = ("int8", "nf4", "q4_1")
DEFAULT_BLOCK_SIZE = 64
DOUBLE_QUANT_BLOCK_SIZE = 256
# Which Dense modules quantize_model converts by default: the projections inside the blocks.
DEFAULT_TARGETS = r"(.*\.)?layers\..*"

# The 16 NormalFloat levels of QLoRA (Dettmers et al. 2023), as in bitsandbytes' NF4 table.
NF4_CODE = np.array([-1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453, -0.28444138169288635,
                     -0.18477343022823334, -0.09105003625154495, 0.0, 0.07958029955625534, 0.16093020141124725,
                     0.24611230194568634, 0.33791524171829224, 0.44070982933044434, 0.5626170039176941,
                     0.7229568362236023, 1.0], np.float32)


def dynamic_map() -> np.ndarray:
  """bitsandbytes' signed 8-bit dynamic quantization map (create_dynamic_map(True, 7, 8)): 256 sorted levels."""
  data = []
  for i in range(7):
    bounds = np.linspace(0.1, 1, 2 ** i + 1, dtype=np.float32)
    means = (bounds[:-1] + bounds[1:]) / 2.0
    data += (10.0 ** (-6 + i) * means).tolist() + (-(10.0 ** (-6 + i)) * means).tolist()
  data += [0.0, 1.0]
  return np.array(sorted(data), np.float32)


DYNAMIC_CODE = dynamic_map()


def _midpoints(code: np.ndarray) -> np.ndarray:
  return ((code[:-1].astype(np.float64) + code[1:]) / 2).astype(np.float32)


@dataclasses.dataclass(frozen=True)
class QuantSpec:
  """What the stored arrays mean (static: part of the graph, not of the state)."""
  scheme: str              # one of SCHEMES
  d_in: int
  d_out: int
  block_size: int
  double_quant: bool
  dtype: str               # the float kernel's dtype, which dequantization returns


def check_scheme(quantize: str | None) -> None:
  if quantize is not None and quantize not in SCHEMES:
    raise ValueError(f"unknown quantize value {quantize!r}; choose one of {list(SCHEMES)} (or None for float weights)")


# ---------------------------------------------------------------------------------------------- arrays

def _round_half_away(v: jax.Array) -> jax.Array:
  return jnp.sign(v) * jnp.floor(jnp.abs(v) + 0.5)


def _inverse(s: jax.Array) -> jax.Array:
  return jnp.where(s > 0, 1.0 / jnp.where(s > 0, s, 1.0), 0.0)


def _nearest(v: jax.Array, code: np.ndarray) -> jax.Array:
  """Index of the nearest level of sorted `code` (ties to the lower one, as bitsandbytes' thresholds)."""
  return jnp.searchsorted(jnp.asarray(_midpoints(code)), v, side="left").astype(jnp.uint8)


def _quantize_scales(s: jax.Array) -> dict[str, jax.Array]:
  """Double quantization of block scales [..., out, nb]: offset = mean, then 8-bit dynamic blocks of 256."""
  flat = s.reshape(*s.shape[:-2], -1)
  offset = flat.mean(-1, keepdims=True)
  centred = flat - offset
  n = flat.shape[-1]
  pad = -n % DOUBLE_QUANT_BLOCK_SIZE
  centred = jnp.pad(centred, [(0, 0)] * (centred.ndim - 1) + [(0, pad)])
  blocks = centred.reshape(*centred.shape[:-1], -1, DOUBLE_QUANT_BLOCK_SIZE)
  absmax = jnp.abs(blocks).max(-1)
  codes = _nearest(blocks * _inverse(absmax)[..., None], DYNAMIC_CODE)
  return {"scale_codes": codes, "scale_scale": absmax.astype(jnp.float32), "scale_offset": offset.astype(jnp.float32)}


def _dequantize_scales(arrays: dict, spec: QuantSpec, lead: tuple) -> jax.Array:
  nb = -(-spec.d_in // spec.block_size)
  v = jnp.asarray(DYNAMIC_CODE)[arrays["scale_codes"].astype(jnp.int32)] * arrays["scale_scale"][..., None]
  v = v.reshape(*lead, -1)[..., : spec.d_out * nb] + arrays["scale_offset"]
  return v.reshape(*lead, spec.d_out, nb)


@functools.partial(jax.jit, static_argnames=("scheme", "block_size", "double_quant"))
def quantize(w: jax.Array, scheme: str, block_size: int = DEFAULT_BLOCK_SIZE,
             double_quant: bool = False) -> dict[str, jax.Array]:
  """w [..., out, in] (torch layout) -> the stored arrays (see the module docstring)."""
  check_scheme(scheme)
  if scheme in ("nf4", "q4_1") and block_size % 2:
    raise ValueError(f"{scheme} packs two codes per byte; block_size must be even, got {block_size}")
  if scheme == "q4_1" and double_quant:
    raise ValueError("double quantization is defined for nf4 / int8 absmax scales, not for q4_1 (GGUF has none)")
  w = w.astype(jnp.float32)
  d_in = w.shape[-1]
  pad = -d_in % block_size
  blocks = jnp.pad(w, [(0, 0)] * (w.ndim - 1) + [(0, pad)]).reshape(*w.shape[:-1], -1, block_size)
  absmax = jnp.abs(blocks).max(-1)  # [..., out, nb]
  if scheme == "q4_1":  # ggml's quantize_row_q4_1 (gguf-py Q4_1.quantize_blocks), in float32
    lo = blocks.min(-1)
    d = (blocks.max(-1) - lo) / 15
    q = jnp.trunc((blocks - lo[..., None]) * _inverse(d)[..., None] + 0.5)
    return {"codes": pack_nibbles(jnp.clip(q, 0, 15).astype(jnp.uint8)), "scale": d, "minimum": lo}
  if scheme == "int8":
    scale = absmax / 127.0
    codes = jnp.clip(_round_half_away(blocks * _inverse(scale)[..., None]), -127, 127).astype(jnp.int8)
  else:
    scale = absmax
    idx = _nearest(blocks * _inverse(absmax)[..., None], NF4_CODE)
    codes = pack_nibbles(idx)
  out = {"codes": codes}
  out.update(_quantize_scales(scale) if double_quant else {"scale": scale.astype(jnp.float32)})
  return out


def pack_nibbles(idx: jax.Array) -> jax.Array:
  """uint8 [..., 2n] of 4-bit values -> uint8 [..., n]: element 2i in the high nibble, 2i+1 in the low one."""
  return (idx[..., 0::2] << 4) | (idx[..., 1::2] & 15)


def unpack_nibbles(packed: jax.Array) -> jax.Array:
  """Inverse of pack_nibbles: uint8 [..., n] -> uint8 [..., 2n]."""
  return jnp.stack([packed >> 4, packed & 15], -1).reshape(*packed.shape[:-1], -1)


def dequantize(arrays: dict, spec: QuantSpec, dtype=None) -> jax.Array:
  """The stored arrays -> W [..., out, in] in `dtype` (default: the original kernel's dtype)."""
  codes = arrays["codes"]
  lead = codes.shape[:-3]
  if "scale" in arrays:
    scale = arrays["scale"].astype(jnp.float32)
  else:
    scale = _dequantize_scales(arrays, spec, lead)
  if spec.scheme == "int8":
    vals = codes.astype(jnp.float32)
  elif spec.scheme == "q4_1":
    vals = unpack_nibbles(codes).astype(jnp.float32)
  else:
    vals = jnp.asarray(NF4_CODE)[unpack_nibbles(codes).astype(jnp.int32)]
  w = vals * scale[..., None]
  if "minimum" in arrays:
    w = w + arrays["minimum"].astype(jnp.float32)[..., None]
  w = w.reshape(*lead, spec.d_out, -1)[..., : spec.d_in]
  return w.astype(dtype or spec.dtype)


@functools.partial(jax.checkpoint, static_argnums=(2,))
def _dequantized_linear(x: jax.Array, arrays: dict, spec: QuantSpec) -> jax.Array:
  return linear(x, dequantize(arrays, spec, x.dtype), True)


# ---------------------------------------------------------------------------------------------- modules

ARRAY_NAMES = ("codes", "scale", "minimum", "scale_codes", "scale_scale", "scale_offset")


class QuantizedWeight(nnx.Variable):
  """Stored codes and block scales of a frozen quantized kernel. Not an nnx.Param: nothing trains it."""


class QuantizedKernel(nnx.Module):
  """Stands where a Dense's `kernel` Param stood and reads like it: `shape` [..., in, out], `dtype`,
  `kernel[...]` (the dequantized float kernel), `get_metadata()` (its logical axis names); writes fail.
  `apply(x)` is x @ kernel with the kernel dequantized inside the matmul."""

  def __init__(self, arrays: dict[str, jax.Array], spec: QuantSpec, sharding_names: tuple = ()):
    self.spec = spec
    names = tuple(sharding_names) or (None, None)
    self.sharding_names = names
    lead, in_ax, out_ax = names[:-2], names[-2], names[-1]
    row = {"codes": (out_ax, in_ax, None), "scale": (out_ax, in_ax), "minimum": (out_ax, in_ax),
           "scale_codes": (None, None),
           "scale_scale": (None,), "scale_offset": (None,)}
    lead = lead if len(lead) == arrays["codes"].ndim - 3 else (None,) * (arrays["codes"].ndim - 3)
    for name, value in arrays.items():
      setattr(self, name, QuantizedWeight(value, sharding_names=lead + row[name]))

  def arrays(self) -> dict[str, jax.Array]:
    return {n: getattr(self, n)[...] for n in ARRAY_NAMES if hasattr(self, n)}

  @property
  def shape(self) -> tuple[int, ...]:
    return tuple(self.codes.shape[:-3]) + (self.spec.d_in, self.spec.d_out)

  @property
  def size(self) -> int:
    return int(np.prod(self.shape))

  @property
  def dtype(self):
    return jnp.dtype(self.spec.dtype)

  @property
  def nbytes(self) -> int:
    """Bytes of the stored arrays."""
    return sum(int(a.size) * a.dtype.itemsize for a in self.arrays().values())

  def get_metadata(self) -> dict:
    return {"out_sharding": self.sharding_names, "sharding_names": self.sharding_names}

  def dequantize(self, dtype=None) -> jax.Array:
    """The float kernel [..., in, out] (a new array; the stored one stays quantized)."""
    return jnp.swapaxes(dequantize(self.arrays(), self.spec, dtype), -1, -2)

  def get_value(self) -> jax.Array:
    return self.dequantize()

  def __getitem__(self, index):
    return self.dequantize()[index]

  def __setitem__(self, index, value):
    raise ValueError("this Dense kernel is quantized and frozen; it cannot be written (e.g. a LoRA merge). "
                     "Keep the adapter unmerged, or load the model without quantize= to merge into float weights")

  def set_value(self, value) -> None:
    """Re-quantizes `value` [..., in, out] with this kernel's scheme (used when loading checkpoint weights)."""
    value = jnp.swapaxes(jnp.asarray(value, jnp.float32), -1, -2)
    new = quantize(value, self.spec.scheme, self.spec.block_size, self.spec.double_quant)
    for name, a in new.items():
      getattr(self, name).set_value(a)

  def set_blocks(self, blocks: GGUFBlocks) -> None:
    """Takes GGUF blocks as they are (their scheme, block size and float16 scales; no double quantization):
    `blocks` codes [..., out, in/block, block] (int8) or [..., out, in/block, block/2] (packed 4-bit)."""
    codes, block = blocks.codes, blocks.block_size
    if tuple(codes.shape[:-3]) + (codes.shape[-2] * block, codes.shape[-3]) != self.shape:
      raise ValueError(f"GGUF {blocks.scheme} blocks of shape {codes.shape} do not fit the kernel {self.shape}")
    lead, (in_ax, out_ax) = axis_names(self.codes)[:-3], self.sharding_names[-2:]
    for name in ARRAY_NAMES:
      if hasattr(self, name):
        delattr(self, name)
    self.spec = dataclasses.replace(self.spec, scheme=blocks.scheme, block_size=int(block), double_quant=False)
    self.codes = QuantizedWeight(jnp.asarray(codes), sharding_names=lead + (out_ax, in_ax, None))
    self.scale = QuantizedWeight(jnp.asarray(blocks.scale), sharding_names=lead + (out_ax, in_ax))
    if blocks.minimum is not None:
      self.minimum = QuantizedWeight(jnp.asarray(blocks.minimum), sharding_names=lead + (out_ax, in_ax))

  def apply(self, x: jax.Array) -> jax.Array:
    """x [..., in] -> [..., out] in x's dtype."""
    return _dequantized_linear(x, self.arrays(), self.spec)


def quantize_kernel(kernel: nnx.Variable, scheme: str, block_size: int = DEFAULT_BLOCK_SIZE,
                    double_quant: bool = False) -> QuantizedKernel:
  """A Dense `kernel` Param [..., in, out] -> QuantizedKernel."""
  value = kernel[...]
  spec = QuantSpec(scheme, int(value.shape[-2]), int(value.shape[-1]), block_size, double_quant,
                   jnp.dtype(value.dtype).name)
  arrays = quantize(jnp.swapaxes(value, -1, -2), scheme, block_size, double_quant)
  return QuantizedKernel(arrays, spec, axis_names(kernel))


@dataclasses.dataclass(frozen=True)
class GGUFBlocks:
  """A GGUF block-quantized matrix as stored, rows in order: scheme "int8" (Q8_0: codes int8 [out, in/32, 32],
  w = codes * scale) or "q4_1" (Q4_1 / Q4_0: codes uint8 [out, in/32, 16] packed as `pack_nibbles`,
  w = q * scale + minimum); scale and minimum float16 [out, in/32]. `shape` is the matrix's (out, in)."""
  scheme: str
  codes: np.ndarray
  scale: np.ndarray
  minimum: np.ndarray | None = None

  @property
  def block_size(self) -> int:
    return self.codes.shape[-1] * (2 if self.scheme == "q4_1" else 1)  # q4_1: two codes per byte

  @property
  def shape(self) -> tuple[int, int]:
    return (self.codes.shape[0], self.codes.shape[1] * self.block_size)

  def rows(self, index: np.ndarray) -> GGUFBlocks:
    """The same blocks with rows (output features) reordered by `index`."""
    return GGUFBlocks(self.scheme, self.codes[index], self.scale[index],
                      None if self.minimum is None else self.minimum[index])

  def dequantize(self) -> np.ndarray:
    """The float32 matrix [out, in], through the same `dequantize` the quantized kernels use."""
    arrays = {"codes": self.codes, "scale": self.scale}
    if self.minimum is not None:
      arrays["minimum"] = self.minimum
    spec = QuantSpec(self.scheme, self.shape[1], self.shape[0], self.block_size, False, "float32")
    return np.asarray(dequantize(arrays, spec))


def quantize_model(model: nnx.Module, scheme: str | None, *, block_size: int = DEFAULT_BLOCK_SIZE,
                   double_quant: bool | None = None, targets: str = DEFAULT_TARGETS) -> nnx.Module:
  """Replaces the kernels of the Dense modules whose path matches `targets` (default: every projection inside
  the blocks) by QuantizedKernels, in place; already-quantized kernels are kept. `double_quant` defaults to
  True for nf4 (as QLoRA) and False for int8. `scheme=None` leaves the model as it is. Returns the model.
  """
  check_scheme(scheme)
  if scheme is None:
    return model
  from lightft_jax.models.layers import Dense  # layers imports this module
  if double_quant is None:
    double_quant = scheme == "nf4"
  pattern = re.compile(targets)
  for path, module in list(nnx.iter_modules(model)):
    if (isinstance(module, Dense) and isinstance(module.kernel, nnx.Variable)
        and pattern.fullmatch(".".join(map(str, path)))):
      module.kernel = quantize_kernel(module.kernel, scheme, block_size, double_quant)
  return model


def quantized_kernels(model: nnx.Module) -> dict[str, QuantizedKernel]:
  """{path of the kernel: QuantizedKernel} of a model."""
  return {".".join(map(str, p)): m for p, m in nnx.iter_modules(model) if isinstance(m, QuantizedKernel)}


def stored_bytes(model: nnx.Module) -> int:
  """Bytes of every QuantizedWeight array of a model."""
  return sum(int(v[...].size) * v[...].dtype.itemsize for _, v in nnx.iter_graph(model)
             if isinstance(v, QuantizedWeight))
