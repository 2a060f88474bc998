"""Quantized frozen base (models/quant.py): int8 / NF4 blockwise absmax against numpy references of the
bitsandbytes algorithm, nibble packing, double quantization, stored bytes, forward error, PEFT training on top
with a bit-identical base, from_pretrained(quantize=...) including GGUF Q8_0 blocks kept as int8."""

import gguf
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from lightft_jax import peft
from lightft_jax.models import Transformer, from_pretrained, get_preset, save_pretrained
from lightft_jax.models import quant
from lightft_jax.models.quant import NF4_CODE, QuantizedKernel, QuantizedWeight
from peft_test_utils import adam_steps

IDS = jnp.array([[5, 17, 3, 42, 8, 11], [7, 7, 60, 2, 91, 33]], jnp.int32)


def tiny(name="tiny-bert", task="classification", **kw):
  return Transformer(get_preset(name, n_layers=2, **kw), task=task, num_labels=3 if task != "lm" else None,
                     rngs=nnx.Rngs(0))


def weights(out=24, d_in=200, seed=0):
  """[out, in] float32 with heavy-ish tails; d_in not a multiple of 64, so the last block of a row is padded."""
  rng = np.random.RandomState(seed)
  return (rng.standard_t(5, (out, d_in)) * 0.05).astype(np.float32)


# ---------------------------------------------------------------------------------- numpy references

def ref_blocks(w, block):
  pad = -w.shape[-1] % block
  return np.pad(w, [(0, 0), (0, pad)]).reshape(w.shape[0], -1, block)


def ref_nearest(v, code):
  return np.abs(v[..., None].astype(np.float64) - code.astype(np.float64)).argmin(-1).astype(np.uint8)


def ref_nf4(w, block=64):
  """bitsandbytes quantize_4bit(quant_type='nf4'): nearest NF4 level of w / absmax per block; packed pairs."""
  b = ref_blocks(w, block)
  absmax = np.abs(b).max(-1)
  idx = ref_nearest(b * (1.0 / absmax)[..., None], NF4_CODE)
  packed = (idx[..., 0::2] << 4) | idx[..., 1::2]
  deq = (NF4_CODE[idx] * absmax[..., None]).reshape(w.shape[0], -1)[:, :w.shape[1]]
  return packed, absmax, deq


def ref_int8(w, block=64):
  b = ref_blocks(w, block)
  s = np.abs(b).max(-1) / 127.0
  v = b * (1.0 / s)[..., None]
  q = np.clip(np.sign(v) * np.floor(np.abs(v) + 0.5), -127, 127).astype(np.int8)
  return q, s, (q * s[..., None]).reshape(w.shape[0], -1)[:, :w.shape[1]]


def ref_double(absmax, block=256):
  """bitsandbytes compress_statistics: absmax - mean, blockwise 8-bit dynamic-map codes, blocks of 256."""
  flat = absmax.reshape(-1)
  offset = flat.mean(dtype=np.float32)
  c = flat - offset
  c = np.pad(c, (0, -c.size % block)).reshape(-1, block)
  a2 = np.abs(c).max(-1)
  idx = ref_nearest(c / a2[:, None], quant.DYNAMIC_CODE)
  return idx, (quant.DYNAMIC_CODE[idx] * a2[:, None]).reshape(-1)[:flat.size].reshape(absmax.shape) + offset


# ---------------------------------------------------------------------------------- arrays

def test_nf4_code_book_is_the_qlora_table():
  assert NF4_CODE.shape == (16,) and NF4_CODE[0] == -1.0 and NF4_CODE[7] == 0.0 and NF4_CODE[15] == 1.0
  assert np.all(np.diff(NF4_CODE) > 0)
  np.testing.assert_allclose(NF4_CODE[[1, 8, 14]], [-0.6961928009986877, 0.07958029955625534, 0.7229568362236023],
                             rtol=0, atol=0)
  dyn = quant.DYNAMIC_CODE  # bitsandbytes create_dynamic_map(): 256 sorted levels, 0 and 1 included, no -1
  assert dyn.shape == (256,) and np.all(np.diff(dyn) > 0) and 0.0 in dyn and dyn[-1] == 1.0 and dyn[0] > -1.0


def test_nf4_matches_numpy_bitsandbytes_reference():
  w = weights()
  got = quant.quantize(jnp.asarray(w), "nf4", 64)
  packed, absmax, deq = ref_nf4(w)
  assert got["codes"].dtype == jnp.uint8 and got["codes"].shape == (24, 4, 32)
  np.testing.assert_array_equal(np.asarray(got["codes"]), packed)
  np.testing.assert_array_equal(np.asarray(got["scale"]), absmax)
  spec = quant.QuantSpec("nf4", 200, 24, 64, False, "float32")
  np.testing.assert_array_equal(np.asarray(quant.dequantize(got, spec)), deq)
  # error bound: half the widest gap between NF4 levels, times the block absmax
  bound = np.repeat(absmax, 64, -1)[:, :200] * np.diff(NF4_CODE).max() / 2
  assert np.all(np.abs(deq - w) <= bound + 1e-7)


def test_int8_matches_numpy_reference_and_half_step_bound():
  w = weights(seed=1)
  got = quant.quantize(jnp.asarray(w), "int8", 64)
  q, s, deq = ref_int8(w)
  assert got["codes"].dtype == jnp.int8
  np.testing.assert_array_equal(np.asarray(got["codes"]), q)
  np.testing.assert_allclose(np.asarray(got["scale"]), s, rtol=1e-6)  # XLA may divide by 127 as * (1/127)
  out = np.asarray(quant.dequantize(got, quant.QuantSpec("int8", 200, 24, 64, False, "float32")))
  np.testing.assert_allclose(out, deq, rtol=1e-6, atol=1e-9)
  assert np.all(np.abs(out - w) <= np.repeat(s, 64, -1)[:, :200] / 2 * (1 + 1e-5))
  assert np.abs(out - w).max() < 0.01 * np.abs(w).max()


def test_nibble_packing_two_codes_per_byte():
  idx = jnp.asarray(np.random.RandomState(0).randint(0, 16, (3, 10)), jnp.uint8)
  packed = quant.pack_nibbles(idx)
  assert packed.shape == (3, 5) and packed.dtype == jnp.uint8
  np.testing.assert_array_equal(np.asarray(packed[:, 0]), np.asarray(idx[:, 0] * 16 + idx[:, 1]))
  np.testing.assert_array_equal(np.asarray(quant.unpack_nibbles(packed)), np.asarray(idx))


def test_double_quantization_matches_reference_and_stays_close():
  w = weights(out=96, d_in=640, seed=2)  # 960 block scales: 4 blocks of 256 (the last one padded)
  single = quant.quantize(jnp.asarray(w), "nf4", 64)
  double = quant.quantize(jnp.asarray(w), "nf4", 64, double_quant=True)
  assert set(double) == {"codes", "scale_codes", "scale_scale", "scale_offset"}
  assert double["scale_codes"].shape == (4, 256) and double["scale_codes"].dtype == jnp.uint8
  np.testing.assert_array_equal(np.asarray(double["codes"]), np.asarray(single["codes"]))
  idx, scales = ref_double(np.asarray(single["scale"]))
  np.testing.assert_array_equal(np.asarray(double["scale_codes"]), idx)
  spec = quant.QuantSpec("nf4", 640, 96, 64, True, "float32")
  got_scales = quant._dequantize_scales(double, spec, ())
  np.testing.assert_allclose(np.asarray(got_scales), scales, rtol=1e-6, atol=1e-8)
  absmax = np.asarray(single["scale"])
  assert np.abs(np.asarray(got_scales) - absmax).max() < 0.02 * absmax.max()  # 8-bit dynamic-map error
  deq1 = np.asarray(quant.dequantize(single, dataclasses_replace(spec, double_quant=False)))
  deq2 = np.asarray(quant.dequantize(double, spec))
  assert np.linalg.norm(deq2 - w) < 1.05 * np.linalg.norm(deq1 - w)


def dataclasses_replace(spec, **kw):
  import dataclasses
  return dataclasses.replace(spec, **kw)


def test_zero_block_and_constant_rows_do_not_make_nans():
  w = np.zeros((4, 128), np.float32)
  w[1, :64] = 0.3
  for scheme in ("int8", "nf4"):
    arr = quant.quantize(jnp.asarray(w), scheme, 64, double_quant=scheme == "nf4")
    out = np.asarray(quant.dequantize(arr, quant.QuantSpec(scheme, 128, 4, 64, scheme == "nf4", "float32")))
    assert np.all(np.isfinite(out))
    np.testing.assert_allclose(out, w, atol=0.3 * 0.01)


def test_backward_pass_keeps_the_quantized_arrays_not_the_float_matrix(capsys):
  """The dequantized [out, in] matrix is a temporary: the backward pass recomputes it from the codes."""
  from jax.ad_checkpoint import print_saved_residuals
  arrays = quant.quantize(jax.random.normal(jax.random.key(0), (512, 256)), "nf4", 64, double_quant=True)
  spec = quant.QuantSpec("nf4", 256, 512, 64, True, "float32")
  a, x = jnp.ones((256, 4)), jnp.ones((8, 256))
  print_saved_residuals(lambda a, x: jnp.sum(quant._dequantized_linear(x @ a @ a.T, arrays, spec)), a, x)
  saved = capsys.readouterr().out
  assert "u8[512,4,32]" in saved and "f32[512,256]" not in saved


# ---------------------------------------------------------------------------------- models

def relative_error(a, b):
  return float(np.linalg.norm(np.asarray(a) - np.asarray(b)) / np.linalg.norm(np.asarray(b)))


@pytest.mark.parametrize("scheme,bound", [pytest.param("int8", 0.01, marks=pytest.mark.slow), ("nf4", 0.2)])
def test_quantized_tiny_model_forward_is_close(scheme, bound):
  """Gaussian weights lose about 10% (relative RMS) to NF4 and 0.6% to int8; two layers compound it."""
  model = tiny("tiny-llama", "lm")
  ref = model(IDS)["logits"]
  w = model.decoder.layers[0].mlp.up.kernel[...]
  quant.quantize_model(model, scheme)
  assert relative_error(model.decoder.layers[0].mlp.up.kernel[...], w) < bound * 0.6
  kernels = quant.quantized_kernels(model)
  assert len(kernels) == 2 * 7 and all(p.startswith("decoder.layers.") for p in kernels)
  assert isinstance(model.lm_head.kernel, nnx.Param)  # lm_head (and heads) stay float
  assert not nnx.state(model, nnx.Param).filter(lambda p, v: p[-1] == "kernel" and "layers" in p)
  err = relative_error(model(IDS)["logits"], ref)
  assert 0 < err < bound, err
  err_jit = relative_error(nnx.jit(lambda m, x: m(x)["logits"])(model, IDS), ref)
  assert abs(err_jit - err) < 1e-3


def test_quantized_kernel_reads_like_the_param():
  model = tiny()
  dense = model.encoder.layers[0].attn.query
  kernel = np.asarray(dense.kernel[...])
  axes = dense.kernel.get_metadata()["out_sharding"]
  quant.quantize_model(model, "int8")
  qk = dense.kernel
  assert isinstance(qk, QuantizedKernel) and qk.shape == kernel.shape and qk.dtype == jnp.float32
  assert qk.get_metadata()["out_sharding"] == axes == ("embed", "heads")
  assert qk.codes.get_metadata()["out_sharding"] == ("heads", "embed", None)
  np.testing.assert_allclose(np.asarray(qk[...]), kernel, atol=np.abs(kernel).max() / 127)
  with pytest.raises(ValueError, match="quantized and frozen"):
    qk[...] = jnp.zeros(kernel.shape)


def test_nf4_double_quant_kernel_bytes_at_most_a_fifth_of_fp32():
  model = tiny("tiny-llama", "lm", d_model=128, d_ff=256)
  fp32 = sum(m.kernel[...].size * 4 for p, m in nnx.iter_modules(model)
             if type(m).__name__ == "Dense" and ".layers." in ".".join(map(str, p)))
  quant.quantize_model(model, "nf4")  # double quantization is the nf4 default
  stored = quant.stored_bytes(model)
  assert stored == sum(k.nbytes for k in quant.quantized_kernels(model).values())
  assert stored <= 0.2 * fp32, stored / fp32
  int8 = quant.stored_bytes(quant.quantize_model(tiny("tiny-llama", "lm", d_model=128, d_ff=256), "int8"))
  assert stored < int8 <= 0.3 * fp32


@pytest.mark.parametrize("cfg", [
    {"method": "lora", "r": 2, "targets": "all_linear"},
    {"method": "lora", "r": 2, "targets": "qv", "dora": True},
    {"method": "ia3"},
    {"method": "adapter", "config": "pfeiffer"},
], ids=["lora", "dora", "ia3", "adapter"])
def test_peft_on_quantized_base_starts_as_identity(cfg):
  model = quant.quantize_model(tiny(), "nf4")
  before = np.asarray(model(IDS)["logits"])
  peft.apply(model, cfg)
  np.testing.assert_allclose(np.asarray(model(IDS)["logits"]), before, atol=1e-5, rtol=0)


def test_lora_trains_on_quantized_base_which_stays_bit_identical():
  model = quant.quantize_model(tiny(), "nf4")
  peft.apply(model, {"method": "lora", "r": 2, "targets": "all_linear"})
  filt = peft.trainable_filter(model)
  _, trainable, frozen, _ = nnx.split(model, filt, nnx.Param, ...)
  is_q = lambda x: isinstance(x, QuantizedWeight)
  assert not any(map(is_q, jax.tree.leaves(trainable, is_leaf=is_q)))
  assert not any(map(is_q, jax.tree.leaves(frozen, is_leaf=is_q)))
  quantized_before = jax.tree.map(np.array, nnx.state(model, QuantizedWeight))
  assert len(jax.tree.leaves(quantized_before)) == 2 * 6 * 4  # codes + 3 double-quant arrays per kernel
  trainable_before = jax.tree.map(np.array, trainable)
  run = adam_steps(model, IDS, jnp.array([0, 2]), 4)
  assert run.losses[-1] < run.losses[0]
  moved = [not np.array_equal(np.asarray(a), b) for a, b in zip(jax.tree.leaves(run.trainable),
                                                                 jax.tree.leaves(trainable_before))]
  assert all(moved)
  after = nnx.state(model, QuantizedWeight)
  for a, b in zip(jax.tree.leaves(after), jax.tree.leaves(quantized_before)):
    assert a.dtype == b.dtype
    np.testing.assert_array_equal(np.asarray(a), b)


def test_lora_merge_into_quantized_base_is_a_clear_error():
  model = quant.quantize_model(tiny(), "int8")
  peft.apply(model, {"method": "lora", "r": 2})
  with pytest.raises(ValueError, match="quantized and frozen"):
    peft.lora.merge(model)


# ---------------------------------------------------------------------------------- from_pretrained

@pytest.fixture(scope="module")
def saved_llama(tmp_path_factory):
  model = tiny("tiny-llama", "lm")
  path = save_pretrained(model, tmp_path_factory.mktemp("llama"))
  return path, np.asarray(model(IDS)["logits"])


def test_from_pretrained_unknown_quantize_value_is_a_clear_error(saved_llama):
  with pytest.raises(ValueError, match=r"unknown quantize value 'int4'; choose one of \['int8', 'nf4', 'q4_1'\]"):
    from_pretrained(saved_llama[0], task="lm", quantize="int4")
  with pytest.raises(ValueError, match="unknown quantize value"):
    quant.quantize_model(tiny(), "fp4")


@pytest.mark.parametrize("scheme,bound", [("int8", 0.01), ("nf4", 0.2), ("q4_1", 0.15)])
def test_from_pretrained_quantize(saved_llama, scheme, bound, tmp_path):
  path, ref = saved_llama
  model = from_pretrained(path, task="lm", quantize=scheme)
  kernels = quant.quantized_kernels(model)
  assert len(kernels) == 14 and all(k.spec.scheme == scheme and k.spec.block_size == 64 for k in kernels.values())
  assert all(k.spec.double_quant == (scheme == "nf4") for k in kernels.values())
  out = model(IDS)["logits"]
  assert relative_error(out, ref) < bound
  # the same quantization as quantizing the float model after loading
  direct = quant.quantize_model(from_pretrained(path, task="lm"), scheme)
  np.testing.assert_array_equal(np.asarray(direct(IDS)["logits"]), np.asarray(out))
  # scanned stacks keep a leading layer axis on the stored arrays and give the same logits
  scanned = from_pretrained(path, task="lm", quantize=scheme, scan_layers=True)
  codes = quant.quantized_kernels(scanned)["decoder.layers.attn.query.kernel"].codes
  assert codes.shape[0] == 2
  np.testing.assert_allclose(np.asarray(scanned(IDS)["logits"]), np.asarray(out), atol=1e-5, rtol=0)
  # saving writes the dequantized kernels
  again = from_pretrained(save_pretrained(model, tmp_path / "q"), task="lm")
  np.testing.assert_allclose(np.asarray(again(IDS)["logits"]), np.asarray(out), atol=1e-5, rtol=0)


def _write_gguf_llama(path, model, qtype=gguf.GGMLQuantizationType.Q8_0):
  """A llama GGUF whose projections are `qtype` blocks (q/k rows permuted as llama.cpp does); the rest float32."""
  cfg = model.cfg
  w = gguf.GGUFWriter(str(path), "llama")
  w.add_context_length(cfg.max_positions)
  w.add_embedding_length(cfg.d_model)
  w.add_block_count(cfg.n_layers)
  w.add_feed_forward_length(cfg.d_ff)
  w.add_head_count(cfg.n_heads)
  w.add_head_count_kv(cfg.num_kv_heads)
  w.add_rope_freq_base(cfg.rope_theta)
  w.add_layer_norm_rms_eps(cfg.norm_eps)
  w.add_vocab_size(cfg.vocab_size)

  def permute(x, n_head):
    return x.reshape(n_head, 2, x.shape[0] // n_head // 2, *x.shape[1:]).swapaxes(1, 2).reshape(x.shape)

  f32 = lambda v: np.ascontiguousarray(np.asarray(v, np.float32))
  blocks = lambda v: gguf.quants.quantize(f32(v), qtype)
  w.add_tensor("token_embd.weight", f32(model.embed.tokens.embedding[...]))
  w.add_tensor("output_norm.weight", f32(model.decoder.final_norm.scale[...]))
  w.add_tensor("output.weight", f32(model.lm_head.kernel[...].T))
  names = {"attn.query": "attn_q", "attn.key": "attn_k", "attn.value": "attn_v", "attn.out": "attn_output",
           "mlp.gate": "ffn_gate", "mlp.up": "ffn_up", "mlp.down": "ffn_down"}
  for i, block in enumerate(model.decoder.layers):
    w.add_tensor(f"blk.{i}.attn_norm.weight", f32(block.attn_norm.scale[...]))
    w.add_tensor(f"blk.{i}.ffn_norm.weight", f32(block.mlp_norm.scale[...]))
    for ours, theirs in names.items():
      mod, attr = ours.split(".")
      kernel = np.asarray(getattr(getattr(block, mod), attr).kernel[...]).T  # torch layout [out, in]
      if theirs in ("attn_q", "attn_k"):
        kernel = permute(kernel, cfg.n_heads if theirs == "attn_q" else cfg.num_kv_heads)
      w.add_tensor(f"blk.{i}.{theirs}.weight", blocks(kernel), raw_dtype=qtype)
  w.write_header_to_file()
  w.write_kv_data_to_file()
  w.write_tensors_to_file()
  w.close()
  return path


@pytest.mark.parametrize("qtype,scheme,bound", [("Q8_0", "int8", 0.01), ("Q4_1", "q4_1", 0.1),
                                                 pytest.param("Q4_0", "q4_1", 0.15, marks=pytest.mark.slow)])
def test_gguf_projections_load_as_their_blocks_without_float_copy(tmp_path, qtype, scheme, bound):
  """GGUF Q8_0 / Q4_1 / Q4_0 projections become int8 / q4_1 kernels holding the file's codes and float16 scales
  (block 32) and compute exactly what gguf's own dequantization gives."""
  model = tiny("tiny-llama", "lm", tie_embeddings=False)
  kind = getattr(gguf.GGMLQuantizationType, qtype)
  path = _write_gguf_llama(tmp_path / "m.gguf", model, kind)
  ref = np.asarray(model(IDS)["logits"])
  floats = from_pretrained(path, task="lm")  # dequantized by gguf
  kept = from_pretrained(path, task="lm", quantize=scheme)
  kernels = quant.quantized_kernels(kept)
  assert len(kernels) == 14
  for k in kernels.values():
    assert k.spec.scheme == scheme and k.spec.block_size == 32 and k.scale.dtype == jnp.float16
    assert k.codes.dtype == (jnp.int8 if scheme == "int8" else jnp.uint8)
    assert (scheme == "q4_1") == hasattr(k, "minimum")
  np.testing.assert_array_equal(np.asarray(kernels["decoder.layers.0.attn.query.kernel"][...]),
                                np.asarray(floats.decoder.layers[0].attn.query.kernel[...]))
  out = np.asarray(kept(IDS)["logits"])
  np.testing.assert_allclose(out, np.asarray(floats(IDS)["logits"]), atol=1e-5, rtol=0)
  assert relative_error(out, ref) < bound
  raw = {t.name: t for t in gguf.GGUFReader(str(path)).tensors}
  from lightft_jax.models.gguf import gguf_blocks
  down = raw["blk.1.ffn_down.weight"]
  np.testing.assert_array_equal(np.asarray(kernels["decoder.layers.1.mlp.down.kernel"].codes[...]),
                                gguf_blocks(down).codes)
  np.testing.assert_array_equal(gguf_blocks(down).dequantize(), gguf.quants.dequantize(down.data, down.tensor_type))
  scanned = from_pretrained(path, task="lm", quantize=scheme, scan_layers=True)
  assert quant.quantized_kernels(scanned)["decoder.layers.mlp.down.kernel"].codes.shape[0] == 2
  np.testing.assert_allclose(np.asarray(scanned(IDS)["logits"]), out, atol=1e-5, rtol=0)


def test_q4_1_codes_are_ggufs():
  """quantize(w, "q4_1", 32) gives the codes, d and m of gguf-py's Q4_1 (ggml's quantize_row_q4_1), before
  GGUF rounds d and m to float16."""
  w = np.random.RandomState(0).randn(8, 96).astype(np.float32)
  ours = quant.quantize(jnp.asarray(w), "q4_1", 32)
  raw = gguf.quants.quantize(w, gguf.GGMLQuantizationType.Q4_1).reshape(8, 3, 20)
  theirs = np.concatenate([raw[..., 4:] & 15, raw[..., 4:] >> 4], -1)
  np.testing.assert_array_equal(np.asarray(quant.unpack_nibbles(ours["codes"])), theirs)
  f16 = lambda b: b.copy().view(np.float16)[..., 0]
  np.testing.assert_array_equal(np.asarray(ours["scale"]).astype(np.float16), f16(raw[..., :2]))
  np.testing.assert_array_equal(np.asarray(ours["minimum"]).astype(np.float16), f16(raw[..., 2:4]))
  spec = quant.QuantSpec("q4_1", 96, 8, 32, False, "float32")
  np.testing.assert_allclose(np.asarray(quant.dequantize(ours, spec)), w, atol=np.abs(w).max() / 15)


def asset_or_skip(name: str):
  """The path of a bundled asset (`lightft_jax.models.assets.<name>()`); skips the test where it is missing."""
  from lightft_jax.models import assets
  try:
    return getattr(assets, name)()
  except FileNotFoundError as e:
    pytest.skip(str(e))


@pytest.mark.slow
def test_smollm2_q4_1_gguf_loads_as_q4_1_kernels_with_the_float_logits():
  """The bundled SmolLM2-135M GGUF (Q4_1 projections) kept quantized gives the logits of its float load."""
  path = asset_or_skip("smollm2_gguf")
  ids = jnp.asarray([[1, 504, 3458, 314, 253, 1345, 28]], jnp.int32)
  kept = from_pretrained(path, task="lm", quantize="q4_1")
  kernels = quant.quantized_kernels(kept)
  assert len(kernels) == 7 * 30 and all(k.spec.scheme == "q4_1" for k in kernels.values())
  assert quant.stored_bytes(kept) == sum(k.size for k in kernels.values()) * 20 // 32  # 0.625 B per weight
  out = np.asarray(kept(ids)["logits"])
  floats = np.asarray(from_pretrained(path, task="lm")(ids)["logits"])
  np.testing.assert_allclose(out, floats, atol=1e-4, rtol=0)


@pytest.mark.slow
def test_minilm_quantized_hidden_states_close():
  path = asset_or_skip("minilm_dir")
  ids = jnp.asarray(np.random.RandomState(0).randint(1000, 20000, (2, 16)), jnp.int32)
  ref = np.asarray(from_pretrained(path)(ids)["hidden_states"])
  # measured: int8 0.019 / nf4 0.245 relative error, mean token cosine 0.9998 / 0.973 (kernels: nf4 9.4%)
  for scheme, bound, cosine in (("int8", 0.03, 0.999), ("nf4", 0.35, 0.95)):
    out = np.asarray(from_pretrained(path, quantize=scheme)(ids)["hidden_states"])
    assert relative_error(out, ref) < bound
    cos = (out * ref).sum(-1) / np.linalg.norm(out, axis=-1) / np.linalg.norm(ref, axis=-1)
    assert cos.mean() > cosine


def test_quantized_base_from_the_config_trains_lora_and_stays_bit_identical(tmp_path):
  """model.quantize=nf4 through the trainer: LoRA trains, every quantized array is unchanged, the frozen split
  holds the quantized arrays (sharded like the float weights), and the parameter total counts their weights."""
  from lightft_jax.train import loop
  from lightft_jax.train.steps import FROZEN
  from test_train_loop import make_config, write_data
  data = write_data(tmp_path / "data")
  plain = loop.setup(make_config(data, peft={"method": "lora", "r": 4, "targets": "qv"}), tmp_path / "plain")
  cfg = make_config(data, peft={"method": "lora", "r": 4, "targets": "qv"}, **{"model.quantize": "nf4"})
  run = loop.setup(cfg, tmp_path / "nf4")
  assert run.total == plain.total and run.trainable == plain.trainable
  before = [np.asarray(x) for x in jax.tree.leaves(nnx.state(run.work.model, quant.QuantizedWeight))]
  frozen_leaves = len(jax.tree.leaves(nnx.state(run.work.model, FROZEN))) - len(jax.tree.leaves(run.state["params"]))
  assert before and len(jax.tree.leaves(run.frozen)) == frozen_leaves  # the quantized arrays are frozen weights
  loop.run_steps(run)
  results = loop.finish(run)
  assert results["status"] == "completed" and np.isfinite(results["train_loss"])
  model = run.prog.model(run.state["params"], run.frozen, run.rest)
  after = [np.asarray(x) for x in jax.tree.leaves(nnx.state(model, quant.QuantizedWeight))]
  assert len(after) == len(before) and all(np.array_equal(a, b) for a, b in zip(before, after))
