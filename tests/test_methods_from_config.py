"""Every registered PEFT method runs from configs/quickstart.py:method=NAME through the entry point; the PEFT
config section is validated against the method's registered options (one method or a compose section), with
or without a model; single-task conditional methods need no task ids in the batch."""

import importlib.util
import json
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from absl import flags
from flax import nnx

from lightft_jax import peft
from lightft_jax.models import Transformer, get_preset

ROOT = Path(__file__).parent.parent
TINY = get_preset("tiny-bert", vocab_size=64, d_model=32, n_heads=2, d_ff=64, max_positions=64)


def quickstart(arg=None):
  spec = importlib.util.spec_from_file_location("quickstart_config", ROOT / "configs" / "quickstart.py")
  mod = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(mod)
  return mod.get_config(arg)


def tiny_classifier():
  return Transformer(TINY, task="classification", num_labels=2, rngs=nnx.Rngs(0))


def ids(b=2, t=6):
  return jnp.asarray(np.random.RandomState(0).randint(3, 64, (b, t)), jnp.int32)


# ----------------------------------------------------------------------------- validation

def test_unknown_option_names_the_nearest_and_lists_all():
  with pytest.raises(peft.UnknownOptionError) as e:
    peft.check_config({"method": "lora", "rr": 4})
  msg = str(e.value)
  assert "'rr'" in msg and "did you mean r" in msg and "peft.rr" in msg
  assert "Valid options: alpha, dora, dropout, init, method, name, r, rslora, seed, targets, train_head" in msg
  assert isinstance(e.value, KeyError) and isinstance(e.value, ValueError)
  with pytest.raises(ValueError, match=r"unknown PEFT method 'lorra'; did you mean 'lora'.*Available: adapter"):
    peft.check_config({"method": "lorra"})
  model = tiny_classifier()
  with pytest.raises(KeyError, match="did you mean num_tokens"):
    peft.apply(model, {"method": "prefix", "num_tokns": 4})
  assert not peft.core.has_peft(model)


MAM = {"method": "compose", "methods": ("prefix", "adapter"), "prefix": {"num_tokens": 4},
       "adapter": {"placement": "parallel", "config": "pfeiffer", "scale": 4.0}}


def test_compose_parts_are_validated_and_addressed_by_name():
  peft.check_config(MAM)
  with pytest.raises(KeyError, match=r"'num_tokns' for PEFT method 'prefix' \(at peft.prefix.num_tokns\); "
                                     r"did you mean num_tokens\? Valid options: hidden, init_std"):
    peft.check_config({**MAM, "prefix": {"num_tokns": 4}})
  with pytest.raises(KeyError, match=r"'prefx' in peft.*not a compose part.*did you mean prefix\? "
                                     r"Valid options: adapter, method, methods, prefix, seed, train_head"):
    peft.check_config({**MAM, "prefx": {"num_tokens": 4}})
  with pytest.raises(ValueError, match="part 'a' is not a method name"):
    peft.check_config({"method": "compose", "methods": ("a",), "a": {"r": 4}})
  with pytest.raises(ValueError, match="names a part twice"):
    peft.check_config({"method": "compose", "methods": ("lora", "lora")})
  with pytest.raises(ValueError, match="needs methods="):
    peft.check_config({"method": "compose"})
  with pytest.raises(ValueError, match=r"peft.methods\[1\]: unknown PEFT method 'ia4'"):  # list form, in Python
    peft.check_config({"methods": ({"method": "lora"}, {"method": "ia4"})})
  keys = peft.option_keys(MAM)
  assert {"methods", "prefix.num_tokens", "adapter.scale", "adapter.placement"} <= set(keys)
  peft.check_key(MAM, "adapter.reduction_factor")
  with pytest.raises(KeyError, match="did you mean adapter.scale"):
    peft.check_key(MAM, "adapter.scal")
  with pytest.raises(KeyError, match="did you mean r, rslora"):
    peft.check_key({"method": "lora"}, "rr")


def test_compose_attaches_every_part_in_order_and_one_method_twice():
  model = peft.apply(tiny_classifier(), MAM)
  assert model.peft_methods == ("prefix", "adapter")
  layer = model.encoder.layers[0]
  assert layer.attn.extra_kv is not None and type(layer.mlp).__name__ == "AdapterMLP"
  assert model(ids())["logits"].shape == (2, 2)
  two = {"method": "compose", "methods": ("lora_attn", "lora_mlp"), "train_head": False,
         "lora_attn": {"method": "lora", "targets": "qv", "r": 2}, "lora_mlp": {"method": "lora", "targets": "mlp"}}
  model = peft.apply(tiny_classifier(), two)
  assert model.peft_methods == ("lora", "lora")
  layer = model.encoder.layers[0]
  assert layer.attn.query.lora["default"].r == 2 and layer.mlp.up.lora["default"].r == 8
  assert not any(isinstance(v, peft.PeftParam) for _, v in nnx.iter_graph(model.head))  # train_head=False shared


def test_a_bad_part_changes_nothing():
  model = tiny_classifier()
  with pytest.raises(KeyError, match="peft.adapter.placment"):
    peft.apply(model, {**MAM, "adapter": {"placment": "parallel"}})
  assert not peft.core.has_peft(model) and model.encoder.layers[0].attn.extra_kv is None


# ----------------------------------------------------------------------------- one task without task ids

@pytest.mark.parametrize("opts", [{"method": "hyper_adapter"}, {"method": "hyper", "emit": ("lora", "prefix", "ln")},
                                  {"method": "moe_lora", "router": "task"}, {"method": "task_gated_adapter"}])
def test_single_task_methods_need_no_task_ids(opts):
  model = peft.apply(tiny_classifier(), {**opts, "n_tasks": 1})
  state = nnx.state(model, peft.PeftParam)  # non-zero conditional weights, so the task embedding matters
  leaves, tree = jax.tree.flatten(state)
  rs = np.random.RandomState(1)
  nnx.update(model, tree.unflatten([jnp.asarray(0.3 * rs.standard_normal(x.shape), x.dtype) for x in leaves]))
  x = ids()
  np.testing.assert_allclose(model(x)["logits"], model(x, ctx={"task_ids": jnp.zeros((2,), jnp.int32)})["logits"],
                             atol=1e-6)
  two = peft.apply(tiny_classifier(), {**opts, "n_tasks": 2})
  with pytest.raises(ValueError, match="needs per-example task ids"):
    two(x)


# ----------------------------------------------------------------------------- the quickstart config

QUICKSTART_METHODS = peft.methods() + ["mam"]


@pytest.mark.parametrize("method", QUICKSTART_METHODS)
def test_quickstart_section_has_every_option_of_the_method(method):
  c = quickstart(f"method={method}")
  peft.check_config(c.peft)
  section = c.peft.to_dict()
  if method == "mam":
    assert section["methods"] == ("prefix", "adapter")
    for part in ("prefix", "adapter"):
      assert set(peft.options(part)) <= set(section[part])
  else:
    assert section["method"] == method and set(peft.options(method)) <= set(section)
  assert dict(c.baselines)["head-only"]["peft"] == {"method": "head"}
  assert c.optimizer.lr == {"full": 5e-5, "none": 5e-5, "layers": 1e-4}.get(method, 2e-3)


def test_quickstart_method_defaults_for_minilm():
  assert quickstart("method=layers").peft.top_k == 2
  mask = quickstart("method=mask").peft
  assert (mask.by, mask.density) == ("magnitude", 0.01)
  for m in ("hyper", "hyper_adapter", "hyper_lora", "hyper_prefix", "task_gated_adapter", "moe_lora"):
    assert quickstart(f"method={m}").peft.n_tasks == 1
  assert quickstart("method=lora,r=4").peft.alpha == 8
  assert quickstart("baselines=False").baselines == ()


def load_cli(spec, *overrides):
  """The config of `python -m lightft_jax.main --config=SPEC --config.KEY=VALUE ...`."""
  from lightft_jax.train import config_lib
  if not hasattr(config_lib, "load_config"):
    pytest.skip("no train.config_lib.load_config (the command-line config loader) in this checkout")
  return config_lib.load_config(spec, [tuple(o.split("=", 1)) for o in overrides])


def test_method_options_are_set_from_the_command_line():
  c = load_cli("configs/quickstart.py:method=mam", "peft.prefix.num_tokens=3", "peft.adapter.scale=2.0")
  assert (c.peft.prefix.num_tokens, c.peft.adapter.scale, c.peft.adapter.placement) == (3, 2.0, "parallel")
  peft.check_config(c.peft)
  c = load_cli("configs/quickstart.py:method=prefix", "peft.num_tokens=7")
  assert c.peft.num_tokens == 7
  c = load_cli("configs/quickstart.py:method=adapter", "peft.targets=.*layers.1.mlp")  # an option defaulting to None
  assert c.peft.targets == ".*layers.1.mlp"
  with pytest.raises(KeyError, match="did you mean num_tokens"):
    peft.check_config(load_cli("configs/quickstart.py:method=prefix", "peft.num_tokns=7").peft)


# ----------------------------------------------------------------------------- 2 steps of every method

SMOKE = "steps=2,batch=8,max_length=32,model=tiny-bert,baselines=False,warmup=0"
SMOKE_FLAGS = ["--config.wandb.mode=disabled", "--config.logging.progress=False", "--config.logging.plots=False",
               "--config.checkpoint.async_save=False", "--config.log_every=1", "--config.eval_every=0",
               "--config.checkpoint_every=0", "--config.task.eval_limit=16"]
FAST = ("lora", "mam")  # in the default suite; every other method is marked slow


def run_entry(argv, monkeypatch):
  """`python -m lightft_jax.main ARGV`, in this process."""
  from lightft_jax import main as entry
  flags.FLAGS.unparse_flags()
  monkeypatch.setattr(sys, "argv", ["lightft_jax.main", *argv])
  with pytest.raises(SystemExit) as e:
    entry.run()
  assert e.value.code in (None, 0), e.value.code


@pytest.mark.parametrize("method", [m if m in FAST else pytest.param(m, marks=pytest.mark.slow)
                                    for m in QUICKSTART_METHODS])
def test_two_steps_of_every_method_through_the_entry_point(method, rotten_tomatoes_dir, tmp_path, monkeypatch):
  monkeypatch.setenv("TFDS_DATA_DIR", str(rotten_tomatoes_dir))
  extra = ["--config.peft.prefix.num_tokens=3"] if method == "mam" else []
  run_entry([f"--config=configs/quickstart.py:method={method},{SMOKE}", f"--workdir={tmp_path}", *SMOKE_FLAGS,
             *extra], monkeypatch)
  res = json.loads((tmp_path / "results.json").read_text())
  assert res["step"] == 2 and 0 < res["trainable_params"] <= res["total_params"]
  if method not in ("full", "none"):
    assert res["trainable_params"] < res["total_params"]
  losses = [r["loss"] for r in map(json.loads, (tmp_path / "metrics.jsonl").read_text().splitlines())
            if r.get("split") == "train" and "loss" in r]
  assert len(losses) == 2 and all(np.isfinite(losses)), losses
  saved = json.loads((tmp_path / "config.json").read_text())
  assert saved["peft"]["method"] == ("compose" if method == "mam" else method)
  if method == "mam":
    assert saved["peft"]["prefix"]["num_tokens"] == 3
