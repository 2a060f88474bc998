"""Weighted LoRA combinations (lightft_jax.peft.merging) against HF peft's `add_weighted_adapter`.

A tiny random Llama gets five peft LoRAs with random non-zero A and B (x, y: rank 4 on different modules; z: rank 2
with an embedding target; rs: rsLoRA; do: DoRA); ours loads the same adapters with `load_hf`. For every combination
type we compare the merged adapter's delta per module (scale * B @ A, compared as products because SVD factor signs
are arbitrary) and the logits with the merged adapter active. svd_clamp clips the signed factors, so its case
gives peft's torch SVD our sign convention, and keeps svd_rank at most every delta's rank (null-space singular
vectors are arbitrary, not only their signs).

DARE draws random masks (peft: torch.bernoulli, ours: jax.random), so the parity cases use density=1.0, where
both keep every entry; `test_dare_mask_statistics` checks the random masks' distribution (fraction kept, 1/density
rescaling, expected value, seed reproducibility) on our side only.
"""

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
hf_peft = pytest.importorskip("peft")

from lightft_jax import peft  # noqa: E402
from lightft_jax.models import hf  # noqa: E402
from lightft_jax.peft import hf_io  # noqa: E402
from lightft_jax.peft.core import unwrapped_path  # noqa: E402
from lightft_jax.peft.lora import LoraEmbedding, lora_modules  # noqa: E402
from lightft_jax.peft.merging import add_weighted_adapter, combine, merge_tensors  # noqa: E402

IDS = np.array([[5, 17, 3, 42, 8, 11, 29], [7, 7, 60, 2, 91, 33, 4]], np.int64)
ADAPTERS = {
    "x": dict(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]),
    "y": dict(r=4, lora_alpha=16, target_modules=["q_proj", "v_proj", "gate_proj"]),
    "z": dict(r=2, lora_alpha=4, target_modules=["q_proj", "embed_tokens"]),
    "rs": dict(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], use_rslora=True),
    "do": dict(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], use_dora=True),
}
XY, XYZ = ["x", "y"], ["x", "y", "z"]
CASES = [  # (combination_type, adapters, weights, kwargs, delta tolerance)
    ("linear", XY, [0.7, -0.4], {}, 1e-5),
    ("linear", ["y"], [2.0], {}, 1e-5),  # one adapter: peft falls back to linear whatever the type
    ("cat", XYZ, [0.5, 1.0, -0.8], {}, 1e-5),
    ("svd", XYZ, [0.5, 1.0, -0.8], {}, 1e-4),
    ("svd", XYZ, [0.5, 1.0, -0.8], {"svd_rank": 2}, 1e-4),
    ("svd", XYZ, [0.5, 1.0, -0.8], {"svd_rank": 2, "svd_clamp": 0.9}, 1e-4),  # see _torch_canonical_svd
    ("ties", XY, [0.7, 0.6], {"density": 0.5}, 1e-5),
    ("ties", XY, [0.7, -0.6], {"density": 0.4, "majority_sign_method": "frequency"}, 1e-5),
    ("magnitude_prune", XY, [0.7, 0.6], {"density": 0.3}, 1e-5),
    ("dare_linear", XY, [0.7, -0.6], {"density": 1.0}, 1e-5),
    ("dare_ties", XY, [0.7, 0.6], {"density": 1.0}, 1e-5),
    ("ties_svd", XYZ, [0.5, 1.0, 0.8], {"density": 0.5}, 1e-4),
    ("magnitude_prune_svd", XYZ, [0.5, 1.0, 0.8], {"density": 0.5, "svd_rank": 3}, 1e-4),
    ("dare_linear_svd", XYZ, [0.5, 1.0, -0.8], {"density": 1.0}, 1e-4),
    ("dare_ties_svd", XYZ, [0.5, 1.0, 0.8], {"density": 1.0, "majority_sign_method": "frequency"}, 1e-4),
    ("svd", ["rs", "x"], [1.0, 0.5], {}, 1e-4),  # the result inherits rsLoRA: scale sqrt(rank), as in peft
    ("linear", ["do", "x"], [1.0, 0.5], {}, 1e-5),  # the result is DoRA with fresh magnitudes |W|
]


def _case_id(case):
  kind, names, _, kw, _ = case
  return "-".join([kind, "".join(names)] + [f"{k}={v}" for k, v in kw.items()])


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
  """(torch peft model with ADAPTERS, our model with the same adapters via load_hf)."""
  cfg = transformers.LlamaConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                                 intermediate_size=37, max_position_embeddings=64, vocab_size=99, pad_token_id=0,
                                 bos_token_id=1, eos_token_id=2)
  torch.manual_seed(0)
  d = tmp_path_factory.mktemp("llama")
  transformers.LlamaForCausalLM(cfg).eval().save_pretrained(d / "base")
  base = transformers.LlamaForCausalLM.from_pretrained(d / "base").eval()
  names = list(ADAPTERS)
  tm = hf_peft.get_peft_model(base, hf_peft.LoraConfig(**ADAPTERS[names[0]]), adapter_name=names[0])
  for n in names[1:]:
    tm.add_adapter(n, hf_peft.LoraConfig(**ADAPTERS[n]))
  g = torch.Generator().manual_seed(0)
  with torch.no_grad():
    for name, p in tm.named_parameters():
      if "lora_magnitude" in name:
        p.mul_(1.0 + 0.3 * torch.rand(p.shape, generator=g))
      elif "lora_" in name:
        p.copy_(0.3 * torch.randn(p.shape, generator=g))
  tm.save_pretrained(d / "adapters", save_embedding_layers=False)  # each adapter in adapters/<name>
  ours = hf.from_pretrained(d / "base", task="lm")
  for n in names:
    peft.load_hf(ours, d / "adapters" / n, adapter=n)
  return tm.eval(), ours


def _torch_logits(tm, name):
  tm.set_adapter(name)
  with torch.no_grad():
    return tm(input_ids=torch.tensor(IDS)).logits.numpy()


def _our_logits(model, name):
  peft.set_active(model, name)
  return np.asarray(model(jnp.asarray(IDS))["logits"])


def _deltas_ours(model, name):
  """{HF module name: scale * A @ B in HF's layout ([out, in] linear, [num, dim] embedding)}."""
  names = hf_io.module_names(model)
  out = {}
  for path, m in lora_modules(model).items():
    if name in m.names:
      u = m.lora[name]
      d = u.scale * np.asarray(u.lora_a[...] @ u.lora_b[...])
      out[names[unwrapped_path(path)]] = d if isinstance(m, LoraEmbedding) else d.T
  return out


def _deltas_theirs(tm, name):
  out = {}
  for key, m in tm.base_model.model.named_modules():
    if isinstance(m, hf_peft.tuners.lora.LoraLayer) and (name in m.lora_A or name in m.lora_embedding_A):
      out[key] = m.get_delta_weight(name).detach().numpy()
  return out


def _torch_canonical_svd(svd):
  """torch.linalg.svd with our sign convention (merge.canonical_svd): svd_clamp's quantile sees signed entries."""
  def wrapped(x, full_matrices=True, driver=None):
    u, s, vh = svd(x, full_matrices=full_matrices, driver=driver)
    k = s.shape[0]
    flip = torch.sign(torch.gather(u[:, :k], 0, u[:, :k].abs().argmax(0, keepdim=True)))
    flip = torch.where(flip == 0, torch.ones_like(flip), flip)
    u, vh = u.clone(), vh.clone()
    u[:, :k], vh[:k] = u[:, :k] * flip, vh[:k] * flip.reshape(-1, 1)
    return u, s, vh
  return wrapped


@pytest.mark.parametrize("case", CASES, ids=[_case_id(c) for c in CASES])
def test_matches_hf_peft(pair, case, monkeypatch):
  kind, adapters, weights, kw, tol = case
  tm, ours = pair
  name = "m_" + _case_id(case).replace(".", "_").replace("=", "_")
  if "svd_clamp" in kw:
    monkeypatch.setattr(torch.linalg, "svd", _torch_canonical_svd(torch.linalg.svd))
  with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # peft warns that density >= 1 prunes nothing
    tm.add_weighted_adapter(adapters, weights, name, combination_type=kind, **kw)
  add_weighted_adapter(ours, adapters, weights, name, combination_type=kind, **kw)
  theirs, mine = _deltas_theirs(tm, name), _deltas_ours(ours, name)
  assert sorted(mine) == sorted(theirs) and mine
  for key in theirs:
    assert np.abs(theirs[key]).max() > 1e-3, key  # not a trivial zero delta
    np.testing.assert_allclose(mine[key], theirs[key], atol=tol, rtol=0, err_msg=key)
  cfg = tm.peft_config[name]
  units = [m.lora[name] for m in lora_modules(ours).values() if name in m.names]
  assert {(u.r, u.alpha, u.rslora, u.lora_magnitude is not None) for u in units} == {
      (cfg.r, cfg.lora_alpha, cfg.use_rslora, cfg.use_dora)}
  ref = _torch_logits(tm, name)
  np.testing.assert_allclose(_our_logits(ours, name), ref, atol=1e-4, rtol=0)
  assert np.abs(ref - _torch_logits(tm, adapters[0])).max() > 1e-3  # the merged adapter changed the output


def test_merged_adapter_equals_its_delta_on_the_base_weights(pair):
  """Our model with the merged adapter active == the bare model with scale * A @ B added to each base weight."""
  _, ours = pair
  add_weighted_adapter(ours, XYZ, [0.5, 1.0, -0.8], "m_prop", combination_type="cat")
  active = _our_logits(ours, "m_prop")
  saved = {}
  for path, m in lora_modules(ours).items():
    if "m_prop" in m.names:
      u = m.lora["m_prop"]
      w = m.base.embedding if isinstance(m, LoraEmbedding) else m.base.kernel
      saved[path] = w[...]
      w[...] = w[...] + u.scale * (u.lora_a[...] @ u.lora_b[...])
  try:
    bare = _our_logits(ours, [])
  finally:
    for path, m in lora_modules(ours).items():
      if path in saved:
        (m.base.embedding if isinstance(m, LoraEmbedding) else m.base.kernel)[...] = saved[path]
  np.testing.assert_allclose(active, bare, atol=1e-5, rtol=0)
  assert np.abs(bare - _our_logits(ours, [])).max() > 1e-3


def test_cat_and_full_rank_svd_are_exact():
  """cat and svd at full rank give sum_i w_i s_i A_i B_i; linear does not (cross terms), as in peft."""
  rng = np.random.RandomState(0)
  a = [jnp.asarray(rng.randn(6, 3), jnp.float32) for _ in range(2)]
  b = [jnp.asarray(rng.randn(3, 5), jnp.float32) for _ in range(2)]
  s, w = [2.0, 0.5], [0.7, -1.3]
  want = sum(wi * si * ai @ bi for ai, bi, si, wi in zip(a, b, s, w))
  for kind, kw in [("cat", {}), ("svd", {"rank": 5})]:
    A, B = combine(a, b, s, w, kind, **kw)
    np.testing.assert_allclose(A @ B, want, atol=1e-5)
  A, B = combine(a, b, s, w, "linear")
  assert A.shape == (6, 3) and np.abs(A @ B - want).max() > 1e-2


def test_dare_mask_statistics():
  """DARE keeps each entry with probability density and divides the kept ones by density: the fraction kept is
  density, the expectation is the unpruned merge, the same key gives the same mask."""
  t = jnp.asarray(np.random.RandomState(0).randn(200, 500), jnp.float32)
  density = 0.3
  out = merge_tensors([t], [1.0], "dare_linear", density, key=jax.random.key(1))
  kept = out != 0
  assert abs(float(kept.mean()) - density) < 0.01
  np.testing.assert_allclose(out[kept], t[kept] / density, rtol=1e-6)
  again = merge_tensors([t], [1.0], "dare_linear", density, key=jax.random.key(1))
  other = merge_tensors([t], [1.0], "dare_linear", density, key=jax.random.key(2))
  assert np.array_equal(out, again) and not np.array_equal(out, other)
  n, x = 4000, t[:20, :50]
  draws = jax.vmap(lambda k: merge_tensors([x], [2.0], "dare_linear", density, key=k))(
      jax.random.split(jax.random.key(3), n))
  sigma = np.abs(2.0 * x) * np.sqrt((1 - density) / density / n)  # std of the mean of n draws
  assert np.max(np.abs(draws.mean(0) - 2.0 * x) / sigma) < 5.0
  # dare_ties: random drop then sign election; with one tensor it is the weighted pruned tensor
  ties = merge_tensors([t], [0.5], "dare_ties", density, key=jax.random.key(1))
  np.testing.assert_allclose(ties, 0.5 * out, rtol=1e-6)


def test_dare_with_density_below_one_on_a_model(pair):
  """A random DARE merge: reproducible from `seed`, different for another seed, about density of entries kept."""
  _, ours = pair
  for n, seed in [("m_dare_a", 0), ("m_dare_b", 0), ("m_dare_c", 1)]:
    add_weighted_adapter(ours, XY, [0.7, 0.6], n, combination_type="dare_linear", density=0.5, seed=seed)
  units = [m.lora for m in lora_modules(ours).values() if "m_dare_a" in m.names]
  a = np.concatenate([np.asarray(u["m_dare_a"].lora_a[...]).ravel() for u in units])
  b = np.concatenate([np.asarray(u["m_dare_b"].lora_a[...]).ravel() for u in units])
  c = np.concatenate([np.asarray(u["m_dare_c"].lora_a[...]).ravel() for u in units])
  assert np.array_equal(a, b) and not np.array_equal(a, c)
  assert 0.6 < np.mean(a != 0) < 0.9  # two tensors each kept with p=0.5: an entry is non-zero w.p. 0.75


def test_errors(pair):
  _, ours = pair
  with pytest.raises(ValueError, match="equal rank"):
    add_weighted_adapter(ours, ["x", "z"], [1.0, 1.0], "bad", combination_type="linear")
  with pytest.raises(ValueError, match="density"):
    add_weighted_adapter(ours, XY, [1.0, 1.0], "bad", combination_type="ties")
  with pytest.raises(ValueError, match="unknown combination_type"):
    add_weighted_adapter(ours, XY, [1.0, 1.0], "bad", combination_type="average")
  with pytest.raises(ValueError, match="no LoRA named"):
    add_weighted_adapter(ours, ["x", "nope"], [1.0, 1.0], "bad")
  with pytest.raises(ValueError, match="one weight per adapter"):
    add_weighted_adapter(ours, XY, [1.0], "bad")
  with pytest.raises(ValueError, match="DoRA is not defined for embeddings"):  # the merge copies adapters[0]'s DoRA
    add_weighted_adapter(ours, ["do", "z"], [1.0, 1.0], "bad", combination_type="cat")
  with pytest.raises(ValueError, match="svd_rank"):
    add_weighted_adapter(ours, XY, [1.0, 1.0], "bad", svd_rank=2.5)
  with pytest.raises(ValueError, match="already exists"):
    add_weighted_adapter(ours, XY, [1.0, 1.0], "y")
  assert "bad" not in peft.adapter_names(ours)
