"""The architecture registry: every architecture's presets, config mapping and weight rules agree with the model."""

import pytest
from flax import nnx

from lightft_jax.models import PRESETS, Transformer, archs
from lightft_jax.models.hf import config_from_hf, config_to_hf


def _params(model) -> set[str]:
  return {".".join(map(str, p)) for p, v in nnx.iter_graph(model) if isinstance(v, nnx.Param)}


def test_unknown_model_type_lists_the_registered_ones():
  with pytest.raises(ValueError, match="unsupported model_type 'mamba'.*'mistral'"):
    archs.get_arch("mamba")
  assert archs.MODEL_TYPES == ("bert", "roberta", "gpt2", "llama", "mistral", "t5")


@pytest.mark.parametrize("model_type", archs.MODEL_TYPES)
def test_presets_survive_the_hf_config_round_trip(model_type):
  arch = archs.get_arch(model_type)
  assert arch.presets and arch.base_preset in arch.presets
  for name in arch.presets:
    cfg = PRESETS[name]
    assert cfg.model_type == model_type
    back = config_from_hf(config_to_hf(cfg))
    # fields left at None (derived defaults) come back as their derived values
    assert back.replace(head_dim=cfg.head_dim, n_decoder_layers=cfg.n_decoder_layers) == cfg.replace(
        bos_token_id=back.bos_token_id, eos_token_id=back.eos_token_id, max_positions=back.max_positions)
    assert (back.dim_head, back.num_decoder_layers) == (cfg.dim_head, cfg.num_decoder_layers)


@pytest.mark.parametrize("model_type", archs.MODEL_TYPES)
def test_rules_name_every_parameter_of_every_task(model_type):
  """Each task's HF class maps every parameter of our model (so load and save miss nothing) onto distinct names."""
  arch = archs.get_arch(model_type)
  cfg = PRESETS[arch.base_preset].replace(vocab_size=64, d_model=32, d_ff=48, n_layers=2, n_heads=4)
  for task in arch.tasks:
    model = Transformer(cfg, task=task, num_labels=1 if task == "regression" else 3, head_style=arch.head_style,
                        rngs=nnx.Rngs(0))
    rules = arch.rules(cfg, task)
    ours = [o for o, _, _ in rules]
    assert _params(model) <= set(ours), (task, sorted(_params(model) - set(ours)))
    theirs = [t for _, t, _ in rules]
    assert len(set(theirs)) == len(theirs) and all(t.startswith(arch.hf_class(task).prefix) for t in theirs[:3])
