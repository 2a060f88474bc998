"""HF peft interop for Mistral (an architecture that only declares itself in models/archs/mistral.py): a LoRA
adapter made by torch peft loads here, and ours loads in `peft.PeftModel`, logits within 1e-4, sliding window on."""

import jax
import numpy as np
import pytest
from flax import nnx

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
hf_peft = pytest.importorskip("peft")

from lightft_jax import peft  # noqa: E402
from lightft_jax.models import from_pretrained  # noqa: E402

IDS = np.array([[5, 17, 3, 42, 8, 11, 29], [7, 7, 60, 2, 91, 33, 4]], np.int64)


def _torch_logits(model):
  with torch.no_grad():
    return model(input_ids=torch.tensor(IDS)).logits.numpy()


def test_mistral_lora_roundtrip(tmp_path):
  cfg = transformers.MistralConfig(vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                   num_key_value_heads=2, intermediate_size=37, max_position_embeddings=64,
                                   sliding_window=3, pad_token_id=0, bos_token_id=1, eos_token_id=2)
  torch.manual_seed(0)
  transformers.MistralForCausalLM(cfg).eval().save_pretrained(tmp_path / "base")
  base = lambda: transformers.MistralForCausalLM.from_pretrained(tmp_path / "base").eval()
  tm = hf_peft.get_peft_model(base(), hf_peft.LoraConfig(r=4, lora_alpha=8, task_type="CAUSAL_LM",
                                                         target_modules=["q_proj", "v_proj", "down_proj"])).eval()
  g = torch.Generator().manual_seed(0)
  with torch.no_grad():
    for name, p in tm.named_parameters():
      if "lora_" in name:
        p.copy_(0.3 * torch.randn(p.shape, generator=g))
  tm.save_pretrained(tmp_path / "theirs")

  ours = peft.load_hf(from_pretrained(tmp_path / "base", task="lm"), tmp_path / "theirs")
  assert ours.cfg.sliding_window == 3
  np.testing.assert_allclose(np.asarray(ours(IDS)["logits"]), _torch_logits(tm), atol=1e-4, rtol=0)

  state = nnx.state(ours, peft.PeftParam)
  leaves, tree = jax.tree.flatten(state)
  nnx.update(ours, jax.tree.unflatten(tree, [x * 1.5 for x in leaves]))
  peft.save_hf(ours, tmp_path / "ours", base_model_name_or_path=str(tmp_path / "base"))
  back = hf_peft.PeftModel.from_pretrained(base(), tmp_path / "ours").eval()
  ref = np.asarray(ours(IDS)["logits"])
  np.testing.assert_allclose(ref, _torch_logits(back), atol=1e-4, rtol=0)
  assert np.abs(ref - _torch_logits(tm)).max() > 1e-3
