"""Bad checkpoints give errors that name the problem and the valid options."""

import json

import numpy as np
import pytest
from flax import nnx
from safetensors.numpy import save_file

from lightft_jax.models import Transformer, from_pretrained, get_preset, load_tokenizer, save_pretrained
from lightft_jax.models.hf import SUPPORTED_MODEL_TYPES, config_from_hf

BERT = dict(model_type="bert", vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
            intermediate_size=24, max_position_embeddings=20, type_vocab_size=2)


def _write(path, config, tensors=None):
  path.mkdir(parents=True, exist_ok=True)
  (path / "config.json").write_text(json.dumps(config))
  if tensors is not None:
    save_file(tensors, str(path / "model.safetensors"))
  return path


def _bert_tensors(hidden=16, ff=24):
  """A complete, correctly shaped BertModel state dict for BERT above (torch layout)."""
  t = {"embeddings.word_embeddings.weight": (50, hidden), "embeddings.position_embeddings.weight": (20, hidden),
       "embeddings.token_type_embeddings.weight": (2, hidden), "embeddings.LayerNorm.weight": (hidden,),
       "embeddings.LayerNorm.bias": (hidden,)}
  pre = "encoder.layer.0."
  for name in ("attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense"):
    t[pre + name + ".weight"], t[pre + name + ".bias"] = (hidden, hidden), (hidden,)
  for name in ("attention.output.LayerNorm", "output.LayerNorm"):
    t[pre + name + ".weight"], t[pre + name + ".bias"] = (hidden,), (hidden,)
  t[pre + "intermediate.dense.weight"], t[pre + "intermediate.dense.bias"] = (ff, hidden), (ff,)
  t[pre + "output.dense.weight"], t[pre + "output.dense.bias"] = (hidden, ff), (hidden,)
  return {k: np.zeros(s, np.float32) for k, s in t.items()}


def test_valid_minimal_checkpoint_loads(tmp_path):
  """The fixture checkpoint itself is valid, so the failures below come from what each test breaks."""
  model = from_pretrained(_write(tmp_path, BERT, _bert_tensors()))
  assert model.cfg.d_model == 16 and model.cfg.model_type == "bert"


def test_missing_directory(tmp_path):
  with pytest.raises(FileNotFoundError, match="no such checkpoint directory"):
    from_pretrained(tmp_path / "nope")


def test_missing_config(tmp_path):
  save_file(_bert_tensors(), str(tmp_path / "model.safetensors"))
  with pytest.raises(FileNotFoundError, match="has no config.json"):
    from_pretrained(tmp_path)


def test_missing_config_with_gguf_hints_gguf_file(tmp_path):
  (tmp_path / "m.gguf").write_bytes(b"")
  with pytest.raises(FileNotFoundError, match=r"gguf_file=.*m\.gguf"):
    from_pretrained(tmp_path)


def test_missing_weights(tmp_path):
  with pytest.raises(FileNotFoundError, match="expected model.safetensors or model.safetensors.index.json"):
    from_pretrained(_write(tmp_path, BERT))


def test_pickle_checkpoint_is_refused(tmp_path):
  _write(tmp_path, BERT)
  (tmp_path / "pytorch_model.bin").write_bytes(b"not unpickled")
  with pytest.raises(ValueError, match="pickle checkpoints are not loaded; convert to safetensors"):
    from_pretrained(tmp_path)


def test_sharded_index_with_missing_shard(tmp_path):
  _write(tmp_path, BERT)
  index = {"weight_map": {"embeddings.word_embeddings.weight": "model-00001-of-00002.safetensors"}}
  (tmp_path / "model.safetensors.index.json").write_text(json.dumps(index))
  with pytest.raises(FileNotFoundError, match="model-00001-of-00002.safetensors"):
    from_pretrained(tmp_path)


def test_unsupported_model_type_lists_supported(tmp_path):
  _write(tmp_path, {"model_type": "mamba"}, _bert_tensors())
  with pytest.raises(ValueError, match="unsupported model_type 'mamba'") as e:
    from_pretrained(tmp_path)
  assert all(t in str(e.value) for t in SUPPORTED_MODEL_TYPES)


def test_shape_mismatch_names_tensor_and_shapes(tmp_path):
  _write(tmp_path, {**BERT, "intermediate_size": 32}, _bert_tensors())
  with pytest.raises(ValueError, match=r"shape mismatch for 'encoder.layer.0.intermediate.dense.weight'.*"
                                       r"implies \(32, 16\), the checkpoint holds \(24, 16\)"):
    from_pretrained(tmp_path)


def test_checkpoint_of_another_architecture(tmp_path):
  gpt2 = {"wte.weight": np.zeros((50, 16), np.float32), "wpe.weight": np.zeros((20, 16), np.float32),
          "h.0.ln_1.weight": np.zeros(16, np.float32), "ln_f.weight": np.zeros(16, np.float32)}
  _write(tmp_path, BERT, gpt2)
  with pytest.raises(ValueError, match="does not match a bert model.*another architecture"):
    from_pretrained(tmp_path)


def test_unsupported_task_for_architecture(tmp_path):
  _write(tmp_path, BERT, _bert_tensors())
  with pytest.raises(ValueError, match=r"task 'lm' is not supported for bert.*'classification'"):
    from_pretrained(tmp_path, task="lm")


def test_unknown_override_is_rejected(tmp_path):
  _write(tmp_path, BERT, _bert_tensors())
  with pytest.raises(ValueError, match="unknown TransformerConfig fields"):
    from_pretrained(tmp_path, hidden_size=8)


@pytest.mark.parametrize("extra, message", [
    ({"hidden_act": "mish"}, "unsupported activation 'mish'"),
    ({"position_embedding_type": "relative_key"}, "only 'absolute'"),
])
def test_unsupported_config_options(extra, message):
  with pytest.raises(ValueError, match=message):
    config_from_hf({**BERT, **extra})


def test_scaled_rope_is_refused():
  llama = dict(model_type="llama", hidden_size=16, num_attention_heads=2, rope_parameters={"rope_type": "yarn"})
  with pytest.raises(ValueError, match="rope type 'yarn' is not supported"):
    config_from_hf(llama)


def test_gguf_errors(tmp_path):
  with pytest.raises(FileNotFoundError, match="no GGUF file 'x.gguf'"):
    from_pretrained(tmp_path, gguf_file="x.gguf")
  (tmp_path / "weights.bin").write_bytes(b"")
  with pytest.raises(ValueError, match="is a file; pass a Hugging Face checkpoint directory or a .gguf file"):
    from_pretrained(tmp_path / "weights.bin")
  with pytest.raises(FileNotFoundError, match="no tokenizer.json"):
    load_tokenizer(tmp_path)


def test_save_errors(tmp_path):
  t5 = get_preset("tiny-t5", vocab_size=32, d_model=16, d_ff=16, n_layers=1)
  with pytest.raises(ValueError, match=r"task 'qa' is not supported for t5 checkpoints; supported: \['base', 'lm'\]"):
    save_pretrained(Transformer(t5, task="qa", rngs=nnx.Rngs(0)), tmp_path)
  custom = t5.replace(model_type="custom")
  with pytest.raises(ValueError, match="cannot save model_type 'custom'.*'gpt2'"):
    save_pretrained(Transformer(custom, task="base", rngs=nnx.Rngs(0)), tmp_path)
