"""experiments/peft_methods/reference_torch.py, the PyTorch side of the reference comparison: its learning-rate
schedules are ours (optax, through train.optim) and the transformers Trainer's, step for step, and its parameter
groups exempt biases, LayerNorm and embeddings from weight decay as ours do."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from experiments.peft_methods import reference_torch as ref  # noqa: E402
from lightft_jax.train import config_lib  # noqa: E402
from lightft_jax.train.optim import make_schedule  # noqa: E402

TOTAL = 60


def test_recipe_ours_follows_our_optax_schedule():
  sched = config_lib.base_config().schedule
  sched.name, sched.warmup_steps = "cosine", 10
  ours = make_schedule(sched, 1e-3, TOTAL)
  got = [1e-3 * ref.lr_factor("ours", s, TOTAL, 10) for s in range(TOTAL)]
  np.testing.assert_allclose(got, [float(ours(s)) for s in range(TOTAL)], rtol=1e-5, atol=1e-12)


def test_recipe_hf_follows_the_trainer_default_schedule():
  opt = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=1e-3)
  sched = transformers.get_linear_schedule_with_warmup(opt, 0, TOTAL)
  want = []
  for _ in range(TOTAL):
    want.append(opt.param_groups[0]["lr"])
    opt.step()
    sched.step()
  got = [1e-3 * ref.lr_factor("hf", s, TOTAL, 10) for s in range(TOTAL)]
  np.testing.assert_allclose(got, want, rtol=1e-9)


def test_param_groups_exempt_biases_norms_and_embeddings_and_give_the_head_its_rate():
  cfg = transformers.BertConfig(vocab_size=50, hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
                                intermediate_size=16)
  model = ref.MeanPooled(transformers.BertModel(cfg, add_pooling_layer=False), 2)
  names = {id(p): n for n, p in model.named_parameters()}
  assert ref.quickstart_rates("full") == (5e-5, pytest.approx(1e-2))  # configs/quickstart.py's own rates
  assert ref.quickstart_rates("head") == (pytest.approx(1e-2), pytest.approx(1e-2))
  groups = ref.param_groups(model, "full", "ours", 5e-5, 1e-2, 0.01)
  for g in groups:
    for p in g["params"]:
      n = names[id(p)]
      exempt = n.endswith("bias") or "LayerNorm" in n or "embeddings" in n  # as train.optim's no_decay
      assert g["weight_decay"] == (0.0 if exempt else 0.01), n
      assert g["lr"] == (1e-2 if n.startswith("classifier.") else 5e-5), n
  assert sum(len(g["params"]) for g in groups) == len(names)
  assert {g["lr"] for g in ref.param_groups(model, "full", "hf", 5e-5, 1e-2, 0.0)} == {5e-5}  # one rate
