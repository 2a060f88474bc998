"""PET-style prompt-based fine-tuning of a causal LM (`task.kind="verbalized"`): template + verbalizer, the class
scores are the LM's logits of the verbalizer tokens at the prompt's last token."""

import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from lightft_jax import data
from lightft_jax.data.formats import decoder_verbalized, verbalizer_token_ids
from lightft_jax.kinds import ANSWER_PREFIX
from lightft_jax.models import Transformer, get_preset
from lightft_jax.models.assets import minilm_dir
from lightft_jax.models.hf import load_tokenizer
from lightft_jax.train import losses
from lightft_jax.train.loop import train
from lightft_jax.train.workload import with_form
from test_train_loop import make_config, write_data


def test_verbalized_loss_is_cross_entropy_over_the_verbalizer_logits_at_the_last_token(tmp_path):
  d = write_data(tmp_path / "data")
  task = with_form(data.get_task("jsonl", path={"train": str(d / "train.jsonl")},
                                 label_names=["negative", "positive"]), "verbalized", "Review: {text}")
  tok = load_tokenizer(str(minilm_dir()))
  examples = [task.open("train", None)[i] for i in range(4)]
  batch = decoder_verbalized(task, examples, tok, max_length=24, padding="longest")
  choices = verbalizer_token_ids(task, tok)
  assert batch["choice_ids"].tolist() == [choices] * 4 and batch["labels"].tolist() == [e["label"] for e in examples]
  prompt = tok.decode(batch["input_ids"][0][batch["attention_mask"][0] > 0]).lower().replace(" ", "")
  assert prompt.startswith("review:") and prompt.endswith(ANSWER_PREFIX.strip().lower())  # scored after "Answer:"
  model = Transformer(get_preset("tiny-gpt2", vocab_size=tok.vocab_size, d_model=32, n_layers=1, n_heads=2,
                                 d_ff=64), task="lm", rngs=nnx.Rngs(0))
  out = model(jnp.asarray(batch["input_ids"]), jnp.asarray(batch["attention_mask"]))
  loss, aux = losses.loss_and_predictions("verbalized", out, {k: jnp.asarray(v) for k, v in batch.items()})
  ref = []
  for r in range(4):  # the row alone, unpadded: its last token's logits of the two verbalizer tokens
    ids = batch["input_ids"][r][batch["attention_mask"][r] > 0]
    logits = np.asarray(model(jnp.asarray(ids[None]))["logits"][0, -1], np.float64)[choices]
    ref.append(-(logits[examples[r]["label"]] - np.log(np.exp(logits).sum())))
  np.testing.assert_allclose(float(loss), np.mean(ref), rtol=1e-5)
  with pytest.raises(ValueError, match="cannot be trained as task.kind='qa'"):
    with_form(task, "qa", "")


def test_verbalized_fine_tuning_runs_through_the_trainer(tmp_path):
  d = write_data(tmp_path / "data")
  cfg = make_config(d, peft={"method": "lora", "r": 4, "targets": "qv"},
                    **{"model.name": "tiny-gpt2", "task.kind": "verbalized", "task.template": "Review: {text}",
                       "task.options": {"path": {s: str(d / f"{s}.jsonl") for s in ("train", "validation", "test")},
                                        "label_names": ["negative", "positive"]},
                       "total_steps": 3})
  res = train(cfg, tmp_path / "run")
  assert res["status"] == "completed" and {"accuracy", "macro_f1"} <= set(res["test"])
  assert "negative" in (tmp_path / "run" / "classification_report.txt").read_text()
