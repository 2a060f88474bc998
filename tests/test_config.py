"""Configs: big_vision-style arguments, locked configs with nearest-key errors, every config in configs/ loads."""

import importlib.util
import re
from pathlib import Path

import ml_collections
import pytest

from lightft_jax import main as entry
from lightft_jax.train import config_lib

CONFIGS = Path(__file__).parent.parent / "configs"
REQUIRED = ("seed", "total_steps", "batch_size", "log_every", "eval_every", "checkpoint_every")


def load(name: str, arg=None):
  spec = importlib.util.spec_from_file_location(name, CONFIGS / f"{name}.py")
  mod = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(mod)
  return mod.get_config(arg)


def test_parse_arg_types_and_defaults():
  a = config_lib.parse_arg("steps=7,lr=1e-2,name=lora,flag=True", steps=1, lr=0.1, name="x", flag=False)
  assert (a.steps, a.lr, a.name, a.flag) == (7, 0.01, "lora", True)
  assert isinstance(a.steps, int) and isinstance(a.lr, float)
  assert config_lib.parse_arg(None, steps=3).steps == 3
  # a text default keeps the text: one number where a "+"-list is the default
  assert config_lib.parse_arg("k=16,name=8", k="0+1", name="x").to_dict() == {"k": "16", "name": "8"}
  assert load("icl_eval", "k=16").icl.ks == (16,)


def test_parse_arg_unknown_names_nearest():
  with pytest.raises(KeyError, match="did you mean steps"):
    config_lib.parse_arg("stepz=3", steps=1, lr=0.1)
  with pytest.raises(ValueError, match="not key=value"):
    config_lib.parse_arg("steps", steps=1)


def test_locked_config_nearest_key_error():
  c = config_lib.finalize(config_lib.base_config())
  with pytest.raises(KeyError) as e:
    config_lib.check_key(c, "optimizer.learning_rate")
  # The hint (not the full list of valid keys that follows it) must suggest the key the user meant.
  hint = str(e.value).split("Valid keys:")[0]
  assert "'optimizer.learning_rate'" in hint
  near = re.search(r"did you mean ([^?]*)\?", hint)
  assert near is not None and "optimizer.lr" in near.group(1).split(", ")
  with pytest.raises(KeyError, match="did you mean total_steps"):
    config_lib.set_key(c, "total_step", 3)
  config_lib.set_key(c, "optimizer.lr", 0.5)
  assert c.optimizer.lr == 0.5
  with pytest.raises(AttributeError):
    c.optimizer.lrr = 1.0  # locked


def test_finalize_validates():
  c = config_lib.base_config()
  c.wandb.mode = "sometimes"
  with pytest.raises(ValueError, match="offline"):
    config_lib.finalize(c)


@pytest.mark.parametrize("name,arg", [("quickstart", None), ("quickstart", "steps=5,r=4"),
                                      ("jsonl_classifier", "data=/tmp/x")])
def test_configs_have_the_common_keys(name, arg):
  c = load(name, arg)
  assert isinstance(c, ml_collections.ConfigDict) and c.is_locked
  for k in REQUIRED:
    assert isinstance(c[k], int), k
  assert c.wandb.mode in config_lib.WANDB_MODES
  for section in ("model", "peft", "task", "optimizer", "schedule", "mesh", "checkpoint", "eval", "logging"):
    assert section in c


def test_quickstart_is_lora_on_mean_pooled_minilm():
  c = load("quickstart", "steps=5")
  assert c.total_steps == 5
  assert (c.peft.method, c.peft.r, c.peft.targets) == ("lora", 8, "all_linear")
  assert c.model.head_style == "mean"
  assert load("quickstart", "targets=qv,pool=bert").peft.targets == "qv"
  assert c.task.name == "rotten_tomatoes" and c.model.name.endswith("model")
  assert dict(c.baselines)["head-only"]["peft"] == {"method": "head"}


def test_cli_overrides_are_typed_and_a_misspelled_key_names_the_nearest(capsys):
  c = config_lib.load_config("configs/quickstart.py:steps=3", [("optimizer.lr", "0.1"), ("peft.r", "4"),
                                                                ("total_steps", "7"), ("wandb.tags", "a,b"),
                                                                ("checkpoint.async_save", "false")])
  assert (c.optimizer.lr, c.peft.r, c.total_steps, c.wandb.tags, c.checkpoint.async_save) == \
      (0.1, 4, 7, ("a", "b"), False)
  assert isinstance(c.optimizer.lr, float) and c.is_locked
  with pytest.raises(KeyError, match="optimizer.lr"):
    config_lib.load_config("configs/quickstart.py:steps=3", [("optimizer.lrr", "0.1")])
  with pytest.raises(ValueError, match="'total_steps' is an integer"):
    config_lib.load_config("configs/quickstart.py", [("total_steps", "ten")])
  with pytest.raises(FileNotFoundError, match="nope.py"):
    config_lib.load_config("configs/nope.py")
  assert entry.split_overrides(["prog", "--config=x.py", "--config.a.b=1", "--workdir=w"]) == \
      (["prog", "--config=x.py", "--workdir=w"], [("a.b", "1")])


def test_head_style_is_a_model_key_every_config_has():
  assert config_lib.base_config().model.head_style == ""
  assert load("quickstart", "pool=bert").model.head_style == "bert"
