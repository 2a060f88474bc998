"""Parity with HF peft on tiny random `transformers` models: torch peft save -> our load_hf, and our save_hf ->
`peft.PeftModel.from_pretrained`, logits within 1e-4 with non-zero adapter weights."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
hf_peft = pytest.importorskip("peft")

from lightft_jax import peft  # noqa: E402
from lightft_jax.models import hf  # noqa: E402
from lightft_jax.peft.lora import LoraUnit, lora_modules  # noqa: E402

TOL = 1e-4
IDS = np.array([[5, 17, 3, 42, 8, 11, 29], [7, 7, 60, 2, 91, 33, 4]], np.int64)


def _configs():
  common = dict(vocab_size=99, pad_token_id=0)
  return {
      "bert": (transformers.BertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                       intermediate_size=37, max_position_embeddings=64, num_labels=3, **common),
               transformers.BertForSequenceClassification, "classification", "SEQ_CLS"),
      "roberta": (transformers.RobertaConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                             intermediate_size=37, max_position_embeddings=64, num_labels=3,
                                             vocab_size=99, pad_token_id=1, bos_token_id=0, eos_token_id=2),
                  transformers.RobertaForSequenceClassification, "classification", "SEQ_CLS"),
      "gpt2": (transformers.GPT2Config(n_embd=32, n_layer=2, n_head=4, n_positions=64, bos_token_id=1,
                                       eos_token_id=2, **common),
               transformers.GPT2LMHeadModel, "lm", "CAUSAL_LM"),
      "llama": (transformers.LlamaConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                         num_key_value_heads=2, intermediate_size=37, max_position_embeddings=64,
                                         bos_token_id=1, eos_token_id=2, **common),
                transformers.LlamaForCausalLM, "lm", "CAUSAL_LM"),
      # 3 layers: HF peft's T5 prefixes give every decoder layer its own block only for an odd layer count
      "t5": (transformers.T5Config(d_model=32, d_kv=8, num_heads=4, d_ff=37, num_layers=3, num_decoder_layers=3,
                                   decoder_start_token_id=0, eos_token_id=1, **common),
             transformers.T5ForConditionalGeneration, "lm", "SEQ_2_SEQ_LM"),
  }


@pytest.fixture(scope="module")
def bases(tmp_path_factory):
  """{arch: (checkpoint dir, torch class, our task, peft task type)} of tiny random HF models."""
  out = {}
  for i, (arch, (cfg, cls, task, task_type)) in enumerate(_configs().items()):
    torch.manual_seed(i)
    d = tmp_path_factory.mktemp(arch)
    cls(cfg).eval().save_pretrained(d)
    out[arch] = (d, cls, task, task_type)
  return out


def _torch_base(bases, arch):
  d, cls, _, _ = bases[arch]
  return cls.from_pretrained(d).eval()


def _ours(bases, arch):
  d, _, task, _ = bases[arch]
  return hf.from_pretrained(d, task=task)


def _randomize_torch(model, seed=0):
  g = torch.Generator().manual_seed(seed)
  with torch.no_grad():
    for name, p in model.named_parameters():
      if "lora_magnitude" in name or "ia3_l" in name:
        p.copy_(1.0 + 0.3 * torch.randn(p.shape, generator=g))
      elif any(k in name for k in ("lora_", "prompt_encoder", "modules_to_save")):
        p.copy_(0.3 * torch.randn(p.shape, generator=g))


def _perturb_ours(model, seed=1):
  """Moves every PEFT parameter (incl. a trainable head) so that a round trip is not a copy of HF's numbers."""
  state = nnx.state(model, peft.PeftParam)
  leaves, tree = jax.tree.flatten(state)
  keys = jax.random.split(jax.random.key(seed), len(leaves))
  new = [x * 1.1 + 0.05 * jax.random.normal(k, x.shape, x.dtype) for x, k in zip(leaves, keys)]
  nnx.update(model, jax.tree.unflatten(tree, new))


def _torch_logits(model, arch, prefix_len=0):
  ids = torch.tensor(IDS)
  kw = {"decoder_input_ids": torch.tensor(IDS[:, :4])} if arch == "t5" else {}
  with torch.no_grad():
    out = model(input_ids=ids, **kw).logits.numpy()
  return out[:, prefix_len:] if arch in ("gpt2", "llama") else out


def _our_logits(model, arch, positions_offset=0):
  kw = {"decoder_input_ids": jnp.asarray(IDS[:, :4])} if arch == "t5" else {}
  if positions_offset:
    kw["positions"] = jnp.broadcast_to(jnp.arange(IDS.shape[1]) + positions_offset, IDS.shape)
  return np.asarray(model(jnp.asarray(IDS), **kw)["logits"])


def _roundtrip(bases, arch, config, tmp_path, *, hf_prompt_len=0, our_offset=0):
  """torch peft -> save -> our load_hf (compare) -> perturb -> save_hf -> PeftModel.from_pretrained (compare)."""
  d, _, _, task_type = bases[arch]
  tm = hf_peft.get_peft_model(_torch_base(bases, arch), config(task_type)).eval()
  _randomize_torch(tm)
  tm.save_pretrained(tmp_path / "theirs")
  ours = peft.load_hf(_ours(bases, arch), tmp_path / "theirs")
  np.testing.assert_allclose(_our_logits(ours, arch, our_offset), _torch_logits(tm, arch, hf_prompt_len),
                             atol=TOL, rtol=0)
  _perturb_ours(ours)
  peft.save_hf(ours, tmp_path / "ours", base_model_name_or_path=str(d))
  back = hf_peft.PeftModel.from_pretrained(_torch_base(bases, arch), tmp_path / "ours").eval()
  ref = _our_logits(ours, arch, our_offset)
  np.testing.assert_allclose(ref, _torch_logits(back, arch, hf_prompt_len), atol=TOL, rtol=0)
  assert np.abs(ref - _torch_logits(tm, arch, hf_prompt_len)).max() > 1e-3  # the perturbation mattered
  return ours


LORA_CASES = [
    ("bert", dict(target_modules=["query", "value"])),
    ("bert", dict(target_modules=["query", "value", "intermediate.dense"], use_dora=True)),
    ("roberta", dict(target_modules=["query", "value", "output.dense"])),
    ("gpt2", dict(target_modules=["c_attn", "c_fc"], use_rslora=True, fan_in_fan_out=True)),
    ("llama", dict(target_modules=["q_proj", "v_proj", "gate_proj", "embed_tokens"])),
    ("llama", dict(target_modules=["k_proj", "o_proj", "down_proj"], use_dora=True)),
    ("t5", dict(target_modules=["q", "v", "wo"])),
]


@pytest.mark.parametrize("arch,kw", LORA_CASES, ids=[f"{a}-{'-'.join(map(str, k.values()))[:40]}"
                                                     for a, k in LORA_CASES])
def test_lora_roundtrip(bases, arch, kw, tmp_path):
  cfg = lambda tt: hf_peft.LoraConfig(r=4, lora_alpha=8, task_type=tt, **kw)
  ours = _roundtrip(bases, arch, cfg, tmp_path)
  units = [m for _, m in nnx.iter_modules(ours) if isinstance(m, LoraUnit)]
  assert units and all(u.r == 4 and u.alpha == 8 for u in units)
  assert all((u.lora_magnitude is not None) == bool(kw.get("use_dora")) for u in units)


IA3_CASES = [
    ("bert", dict(target_modules=["key", "value", "output.dense"], feedforward_modules=["output.dense"])),
    ("roberta", dict(target_modules=["key", "value", "output.dense"], feedforward_modules=["output.dense"])),
    ("gpt2", dict(target_modules=["c_attn", "mlp.c_proj"], feedforward_modules=["mlp.c_proj"])),
    ("llama", dict(target_modules=["k_proj", "v_proj", "down_proj"], feedforward_modules=["down_proj"])),
]


@pytest.mark.parametrize("arch,kw", IA3_CASES, ids=[a for a, _ in IA3_CASES])
def test_ia3_roundtrip(bases, arch, kw, tmp_path):
  _roundtrip(bases, arch, lambda tt: hf_peft.IA3Config(task_type=tt, **kw), tmp_path)


@pytest.mark.parametrize("arch", ["bert", "gpt2", "llama", "t5"])
def test_prefix_roundtrip(bases, arch, tmp_path):
  p = 3
  # HF puts the prefix in the KV cache, so real tokens sit at positions P, P+1, ...; we pass those positions
  # (T5 has relative positions only: its prefix slots sit at -P..-1 before the decoder input).
  ours = _roundtrip(bases, arch, lambda tt: hf_peft.PrefixTuningConfig(num_virtual_tokens=p, task_type=tt),
                    tmp_path, our_offset=0 if arch == "t5" else p)
  if arch == "t5":  # HF peft prefixes T5's decoder self-attention only
    assert all(layer.attn.extra_kv is None for layer in ours.encoder.layers)
    assert all(layer.attn.extra_kv is not None and layer.cross_attn.extra_kv is None for layer in ours.decoder.layers)


def test_t5_prefix_that_hf_cannot_hold_is_rejected(tmp_path):
  from lightft_jax.models import Transformer, get_preset
  model = Transformer(get_preset("tiny-t5", n_layers=2, vocab_size=99), task="lm", rngs=nnx.Rngs(0))
  peft.apply(model, {"method": "prefix", "num_tokens": 2, "targets": r"decoder\.layers\.\d+\.attn"})
  with pytest.raises(ValueError, match="same prefix"):  # even layer count: HF reads one block for layers 0 and 1
    peft.save_hf(model, tmp_path)
  peft.apply(model, {"method": "prefix", "num_tokens": 2, "targets": r"encoder\.layers\.\d+\.attn"})
  with pytest.raises(ValueError, match="decoder self-attention only"):
    peft.save_hf(model, tmp_path)


@pytest.mark.parametrize("arch", ["bert", "gpt2", "llama", "t5"])
def test_prompt_roundtrip(bases, arch, tmp_path):
  p = 4
  ours = _roundtrip(bases, arch, lambda tt: hf_peft.PromptTuningConfig(num_virtual_tokens=p, task_type=tt),
                    tmp_path, hf_prompt_len=p)
  assert ours.input_transform.num_tokens == p


def test_saved_config_names_hf_modules(bases, tmp_path):
  model = peft.apply(_ours(bases, "bert"), {"method": "lora", "r": 2, "targets": "qv"})
  peft.save_hf(model, tmp_path, base_model_name_or_path="tiny-bert")
  cfg = json.loads((tmp_path / "adapter_config.json").read_text())
  assert cfg["peft_type"] == "LORA" and cfg["r"] == 2 and cfg["task_type"] == "SEQ_CLS"
  assert "bert.encoder.layer.1.attention.self.value" in cfg["target_modules"]
  assert cfg["modules_to_save"] == ["classifier"]


def test_merged_lora_exports_as_plain_checkpoint(bases, tmp_path):
  model = peft.apply(_ours(bases, "llama"), {"method": "lora", "r": 4, "targets": "all_linear"})
  for u in [m for _, m in nnx.iter_modules(model) if isinstance(m, LoraUnit)]:
    u.lora_b[...] = 0.2 * jax.random.normal(jax.random.key(0), u.lora_b.shape)
  before = _our_logits(model, "llama")
  peft.merge_and_unload(model)
  assert not lora_modules(model)
  hf.save_pretrained(model, tmp_path)
  tm = transformers.AutoModelForCausalLM.from_pretrained(tmp_path).eval()
  np.testing.assert_allclose(_torch_logits(tm, "llama"), before, atol=TOL, rtol=0)


def test_adapter_for_other_architecture_is_rejected(bases, tmp_path):
  tm = hf_peft.get_peft_model(_torch_base(bases, "gpt2"), hf_peft.LoraConfig(r=2, target_modules=["c_attn"]))
  tm.save_pretrained(tmp_path)
  with pytest.raises(ValueError, match="another architecture"):
    peft.load_hf(_ours(bases, "llama"), tmp_path)


def test_adapter_with_wrong_shapes_is_rejected(bases, tmp_path):
  tm = hf_peft.get_peft_model(_torch_base(bases, "llama"), hf_peft.LoraConfig(r=2, target_modules=["q_proj"]))
  tm.save_pretrained(tmp_path)
  from lightft_jax.models import get_preset, Transformer
  wider = Transformer(get_preset("tiny-llama", d_model=48, n_heads=4, n_kv_heads=2, vocab_size=99), task="lm",
                      rngs=nnx.Rngs(0))
  with pytest.raises(ValueError, match="shape mismatch"):
    peft.load_hf(wider, tmp_path)
