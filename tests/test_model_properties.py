"""Properties every Transformer configuration must have: causality, padding invariance, scan == unrolled,
bfloat16 close to float32, length errors, grouped-query attention, logical axis names on every parameter."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from lightft_jax.models import Transformer, generate, get_preset

B, T = 2, 8
DECODERS = ["tiny-gpt2", "tiny-llama", "tiny-t5"]  # tiny-t5: its decoder stack


def build(name, task="lm", seed=0, **overrides):
  """Weights 10x the default init scale: attention is peaked, so masks and positions visibly matter."""
  overrides = {"initializer_range": 0.2, **overrides}
  return Transformer(get_preset(name, **overrides), task=task, rngs=nnx.Rngs(seed))


def random_ids(seed, shape=(B, T), low=3, high=1000):
  return jnp.asarray(np.random.default_rng(seed).integers(low, high, shape), jnp.int32)


def decoder_logits(model, ids, mask=None):
  """Decoder outputs [B,T,V] for `ids`; for encoder-decoders `ids` feed the decoder (fixed encoder input)."""
  if model.cfg.arch == "encoder_decoder":
    return model(random_ids(99, (ids.shape[0], 5)), decoder_input_ids=ids, decoder_attention_mask=mask)["logits"]
  return model(ids, mask)["logits"]


@pytest.fixture(scope="module")
def models():
  return {name: build(name, task="base" if name == "tiny-bert" else "lm")
          for name in ("tiny-bert", "tiny-gpt2", "tiny-llama", "tiny-t5")}


# ----------------------------------------------------------------------------- causality and padding

@pytest.mark.parametrize("name", DECODERS)
def test_future_tokens_do_not_change_the_past(models, name):
  model, ids = models[name], random_ids(0)
  t = 4
  changed = ids.at[:, t + 1].set((ids[:, t + 1] + 7) % 1000)
  a, b = decoder_logits(model, ids), decoder_logits(model, changed)
  np.testing.assert_allclose(a[:, :t + 1], b[:, :t + 1], atol=1e-6, rtol=0)
  assert np.abs(np.asarray(a[:, t + 1:] - b[:, t + 1:])).max() > 1e-4  # the change is visible afterwards


def padded(ids, n_pad, side):
  """ids [B,L] -> ids [B,L+n_pad] with junk ids in the pad slots, and the mask."""
  junk = random_ids(7, (ids.shape[0], n_pad))
  ones, zeros = jnp.ones_like(ids), jnp.zeros_like(junk)
  if side == "right":
    return jnp.concatenate([ids, junk], 1), jnp.concatenate([ones, zeros], 1)
  return jnp.concatenate([junk, ids], 1), jnp.concatenate([zeros, ones], 1)


@pytest.mark.parametrize("name", ["tiny-bert", "tiny-t5"])
def test_encoder_right_padding_leaves_real_tokens_unchanged(models, name):
  model, ids = models[name], random_ids(1, (B, 5))
  pids, pmask = padded(ids, 3, "right")
  np.testing.assert_allclose(model.encode(pids, pmask)[:, :5], model.encode(ids), atol=1e-5, rtol=0)


@pytest.mark.parametrize("name, side", [("tiny-gpt2", "right"), ("tiny-gpt2", "left"), ("tiny-llama", "right"),
                                        ("tiny-llama", "left"), ("tiny-t5", "right")])
def test_decoder_padding_leaves_real_tokens_unchanged(models, name, side):
  model, ids = models[name], random_ids(2, (B, 5))
  pids, pmask = padded(ids, 3, side)
  real = slice(0, 5) if side == "right" else slice(3, 8)  # left padding: positions come from the mask
  np.testing.assert_allclose(decoder_logits(model, pids, pmask)[:, real], decoder_logits(model, ids),
                             atol=1e-5, rtol=0)


# ----------------------------------------------------------------------------- scan over layers

def stack_layers(unrolled_state: nnx.State) -> dict:
  """Flat {path: array} of an unrolled model mapped to the scanned layout (layers.i.x -> layers.x[i])."""
  groups: dict[tuple, dict[int, jax.Array]] = {}
  for path, var in nnx.to_flat_state(unrolled_state):
    if "layers" in path:
      at = path.index("layers")
      groups.setdefault(path[:at + 1] + path[at + 2:], {})[int(path[at + 1])] = var[...]
    else:
      groups[path] = {-1: var[...]}
  return {p: (v[-1] if -1 in v else jnp.stack([v[i] for i in sorted(v)])) for p, v in groups.items()}


def scanned_copy(name, task, unrolled, **overrides):
  """A scan_layers=True model holding exactly the unrolled model's weights."""
  scanned = build(name, task=task, seed=1, scan_layers=True, **overrides)
  stacked = stack_layers(nnx.state(unrolled, nnx.Param))
  target = nnx.state(scanned, nnx.Param)
  flat = nnx.to_flat_state(target)
  assert {p for p, _ in flat} == set(stacked), "scanned and unrolled parameter trees differ"
  for path, var in flat:
    assert var[...].shape == stacked[path].shape, path
    var[...] = stacked[path]
  nnx.update(scanned, target)
  return scanned


def outputs(model, ids):
  if model.cfg.arch == "encoder_decoder":
    return model(ids, decoder_input_ids=ids[:, :5])["logits"]
  out = model(ids)
  return out.get("logits", out["hidden_states"])


@pytest.mark.parametrize("name, remat", [("tiny-bert", False), ("tiny-gpt2", False), ("tiny-llama", True),
                                         ("tiny-t5", True)])
def test_scan_layers_equals_unrolled(models, name, remat):
  task = "base" if name == "tiny-bert" else "lm"
  unrolled = models[name]
  scanned = scanned_copy(name, task, unrolled, remat=remat)
  ids = random_ids(3)
  np.testing.assert_allclose(outputs(scanned, ids), outputs(unrolled, ids), atol=1e-5, rtol=0)


def test_scan_and_remat_gradients_and_generation_equal_unrolled(models):
  unrolled = models["tiny-llama"]
  scanned = scanned_copy("tiny-llama", "lm", unrolled, remat=True)
  ids = random_ids(4)

  def loss(model):
    logits = model(ids)["logits"][:, :-1]
    return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(logits), ids[:, 1:, None], -1))

  grad = nnx.jit(nnx.grad(loss))
  g_unrolled = stack_layers(grad(unrolled))
  g_scanned = dict(nnx.to_flat_state(grad(scanned)))
  for path, g in g_unrolled.items():
    np.testing.assert_allclose(g_scanned[path][...], g, atol=1e-6, rtol=1e-4, err_msg=str(path))
  # KV-cache generation (prefill, then the decode loop) through the scanned stack.
  left_padded, mask = ids.at[1, :3].set(0), jnp.ones_like(ids).at[1, :3].set(0)
  tokens, logits = zip(*(generate(m, left_padded, mask, max_new_tokens=4, return_logits=True)
                         for m in (unrolled, scanned)))
  np.testing.assert_array_equal(tokens[1], tokens[0])
  np.testing.assert_allclose(logits[1], logits[0], atol=1e-5, rtol=0)


# ----------------------------------------------------------------------------- numerics and shapes

@pytest.mark.parametrize("name", [pytest.param("tiny-gpt2", marks=pytest.mark.slow), "tiny-llama"])
def test_bfloat16_compute_stays_close_to_float32(models, name):
  """bfloat16 keeps 8 significant bits: each rounding is off by at most 2**-9 relative. A tiny 2-layer
  model rounds activations about 20 times along any path (embeddings, q/k/v, scores, softmax, out, MLP
  in/out, residuals); independent rounding errors add in quadrature, sqrt(20) * 2**-9 ~ 0.9%, and
  norms / softmax / activations may amplify them about twice. So the relative L2 error of the logits
  must stay below 2% (measured: about 0.6%), while a structural error in the bf16 path gives O(1).
  Uses the default init scale: with 10x larger weights attention logits grow tenfold and so does the
  error that softmax passes on (measured 1-1.6% there)."""
  f32 = build(name, initializer_range=0.02)
  bf16 = build(name, initializer_range=0.02, dtype="bfloat16")
  for (p, a), (_, b) in zip(nnx.to_flat_state(nnx.state(f32, nnx.Param)),
                            nnx.to_flat_state(nnx.state(bf16, nnx.Param))):
    assert b[...].dtype == jnp.float32 and np.array_equal(a[...], b[...]), p  # same float32 weights
  ids = random_ids(5)
  lo, hi = bf16(ids)["logits"], f32(ids)["logits"]
  assert lo.dtype == jnp.bfloat16
  rel = float(jnp.linalg.norm(lo.astype(jnp.float32) - hi) / jnp.linalg.norm(hi))
  assert rel < 0.02, rel


@pytest.mark.parametrize("name", ["tiny-bert", "tiny-gpt2", "tiny-llama"])
def test_input_longer_than_max_positions_raises(models, name):
  model = models[name]
  too_long = random_ids(6, (1, model.cfg.max_positions + 1))
  with pytest.raises(ValueError, match=f"at most {model.cfg.max_positions} positions"):
    model(too_long)
  if model.cfg.arch == "decoder":
    with pytest.raises(ValueError, match=f"exceeds the model's {model.cfg.max_positions} positions"):
      model.init_cache(1, model.cfg.max_positions + 1)


def test_grouped_query_attention_equals_mha_with_repeated_kv_heads(models):
  gqa = models["tiny-llama"]
  cfg = gqa.cfg
  assert cfg.num_kv_heads < cfg.n_heads
  rep = cfg.n_heads // cfg.num_kv_heads
  mha = build("tiny-llama", n_kv_heads=cfg.n_heads)
  src = dict(nnx.to_flat_state(nnx.state(gqa, nnx.Param)))
  target = nnx.state(mha, nnx.Param)
  for path, var in nnx.to_flat_state(target):
    w = src[path][...]
    if path[-2] in ("key", "value"):  # [D, K*Dh] -> [D, H*Dh]: query head h reads kv head h // rep
      w = jnp.repeat(w.reshape(cfg.d_model, cfg.num_kv_heads, cfg.dim_head), rep, axis=1).reshape(
          cfg.d_model, -1)
    var[...] = w
  nnx.update(mha, target)
  ids = random_ids(8)
  np.testing.assert_allclose(gqa(ids)["logits"], mha(ids)["logits"], atol=1e-5, rtol=0)
  assert gqa.init_cache(B, T)["k"].shape == (cfg.n_layers, B, T, cfg.num_kv_heads, cfg.dim_head)


# ----------------------------------------------------------------------------- logical axis names

# DESIGN.md's logical axes, plus `qkv` (fused projections), `embed_out` (square dense layers), `norm`.
LOGICAL_AXES = {"embed", "embed_out", "mlp", "heads", "kv", "qkv", "vocab", "layers", "norm", None}


@pytest.mark.parametrize("name, task, scan", [("tiny-bert", "classification", False), ("tiny-gpt2", "lm", True),
                                              ("tiny-llama", "lm", False), ("tiny-llama", "qa", True),
                                              ("tiny-t5", "lm", True), ("roberta-base", "regression", False)])
def test_every_parameter_has_logical_axis_names(name, task, scan):
  abstract = nnx.eval_shape(lambda: Transformer(get_preset(name, scan_layers=scan), task=task, num_labels=3,
                                                rngs=nnx.Rngs(0)))
  flat = nnx.to_flat_state(nnx.state(abstract, nnx.Param))
  assert flat
  for path, var in flat:
    names = var.get_metadata().get("out_sharding")
    assert names is not None, f"{path} has no logical axis names"
    assert len(names) == var.ndim, (path, names, var.shape)
    assert set(names) <= LOGICAL_AXES, (path, names)
    assert any(n is not None for n in names) or var.ndim == 1, (path, names)
    if scan and "layers" in path:
      assert names[0] == "layers", (path, names)


@pytest.mark.parametrize("transpose", [False, True], ids=["w", "w.T"])
@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
def test_linear_gradients_equal_autodiff_of_dot(transpose, dtype):
  """`ops.linear` (the matmul every Dense and tied head uses) has the gradients of a plain jnp.dot."""
  from lightft_jax.models.ops import linear
  rng = np.random.default_rng(0)
  x = jnp.asarray(rng.normal(size=(2, 5, 8)), dtype)
  w = jnp.asarray(rng.normal(size=(6, 8) if transpose else (8, 6)), dtype)

  def loss(dot):
    return lambda x, w: jnp.sum(jnp.sin(dot(x, w)).astype(jnp.float32))

  ours = jax.grad(loss(lambda x, w: linear(x, w, transpose)), (0, 1))(x, w)
  ref = jax.grad(loss(lambda x, w: jnp.dot(x, w.T if transpose else w)), (0, 1))(x, w)
  tol = 1e-6 if dtype == jnp.float32 else 2e-2
  for a, b in zip(ours, ref):
    assert a.dtype == b.dtype and a.shape == b.shape
    np.testing.assert_allclose(np.asarray(a, np.float32), np.asarray(b, np.float32), atol=tol, rtol=tol)
