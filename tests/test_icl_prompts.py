"""Prompt building, demonstration selection / ablations and the choice-to-prediction rules (no model)."""

from pathlib import Path

import numpy as np
import pytest

from lightft_jax.icl import calibration as cal
from lightft_jax.icl.prompts import (PromptTemplate, demonstration_labels, order_demonstrations,
                                     select_demonstrations)

T = PromptTemplate("Review: {text}\nSentiment:", verbalizers=("negative", "positive"))
POOL = [{"text": f"t{i}", "label": i % 2} for i in range(10)]


def test_build_prompt_layout():
  prompt = T.build(POOL[:2], {"text": "q"}, demo_labels=[1, 1])
  assert prompt == "Review: t0\nSentiment: positive\n\nReview: t1\nSentiment: positive\n\nReview: q\nSentiment:"
  assert T.choices() == [" negative", " positive"]
  assert T.build([], {"text": "q"}) == "Review: q\nSentiment:"
  assert T.content_free_answer_context() == "Sentiment:"


def test_template_errors_name_the_problem():
  with pytest.raises(ValueError, match=r"fields \['sentence'\].*available fields: \['label', 'text'\]"):
    PromptTemplate("{sentence} ->").build([], {"text": "x", "label": 0})
  with pytest.raises(ValueError, match="no {field} placeholder"):
    PromptTemplate("Answer:")
  with pytest.raises(ValueError, match="no answer choices"):
    PromptTemplate("{text}").choices()


def test_random_and_balanced_selection():
  rng = np.random.default_rng(0)
  idx = select_demonstrations("random", POOL, 5, rng)
  assert len(set(idx)) == 5 and all(0 <= i < 10 for i in idx)
  skewed = [{"text": "", "label": int(i >= 8)} for i in range(10)]  # 8 of class 0, 2 of class 1
  for k in (2, 4, 6):
    labels = [skewed[i]["label"] for i in select_demonstrations("balanced", skewed, k, rng)]
    assert sum(labels) == min(k // 2, 2), labels
  assert 3 not in select_demonstrations("random", POOL, 9, rng, exclude=3)
  with pytest.raises(ValueError, match="pool has only 10"):
    select_demonstrations("random", POOL, 11, rng)
  with pytest.raises(ValueError, match="choose from"):
    select_demonstrations("closest", POOL, 1, rng)


def test_knn_selection_orders_nearest_last():
  emb = np.zeros((10, 4))
  emb[:4], emb[4:] = np.eye(4), [0.0, 0.0, 1.0, 1.0]  # items 0..3 along the axes, the rest elsewhere
  query = np.array([1.0, 0.5, 0.0, 0.0])
  idx = select_demonstrations("knn", POOL, 2, np.random.default_rng(0), query_embedding=query, pool_embeddings=emb)
  assert idx == [1, 0]


def test_orders_and_label_ablations():
  rng = np.random.default_rng(0)
  labels = [p["label"] for p in POOL]
  assert order_demonstrations([3, 2, 5], "reverse", rng, labels) == [5, 2, 3]
  assert order_demonstrations([3, 2, 5], "by_label", rng, labels) == [2, 3, 5]
  assert sorted(order_demonstrations([3, 2, 5], "random", rng, labels)) == [2, 3, 5]
  assert demonstration_labels([0, 1, 1], "flipped", 2, rng) == [1, 0, 0]
  assert demonstration_labels([0, 2, 1], "flipped", 3, rng) == [1, 0, 2]
  rand = demonstration_labels([0] * 200, "random", 3, rng)
  assert set(rand) == {0, 1, 2}
  with pytest.raises(ValueError, match="gold"):
    demonstration_labels([0], "shuffled", 2, rng)


def test_prediction_rules():
  ll = np.log(np.array([[0.7, 0.3], [0.6, 0.4], [0.2, 0.8]]))
  np.testing.assert_array_equal(cal.predict(ll), [0, 0, 1])
  # Length normalisation: per character of " negative" (9) vs " positive" (9) is a no-op; unequal lengths flip.
  np.testing.assert_array_equal(cal.predict_length_normalised(np.log([[0.3, 0.2]]), [" a", " bbbb"]), [1])
  np.testing.assert_array_equal(cal.predict_mutual_information(ll, np.log([0.65, 0.35])), [0, 1, 1])
  # Contextual calibration: a model biased towards class 0 by the prior's factor is exactly un-biased.
  prior = cal.content_free_prior(np.log(np.array([[0.8, 0.2], [0.6, 0.4], [0.7, 0.3]])))
  np.testing.assert_allclose(prior, [0.7, 0.3])
  true_p = np.array([[0.4, 0.6], [0.6, 0.4], [0.35, 0.65]])
  biased = np.log(true_p * prior)
  np.testing.assert_array_equal(cal.predict(biased), [0, 0, 0])
  np.testing.assert_array_equal(cal.predict_calibrated(biased, prior), [1, 0, 1])


def _smollm_tokenizers():
  import transformers as hf_t
  from lightft_jax.models import assets
  from lightft_jax.models.hf import load_tokenizer
  path = assets.smollm2_gguf()
  return load_tokenizer(path), hf_t.AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)


PROMPTS = ["Review: a fine film\nSentiment:", "Review: x\nSentiment: positive\n\nReview: y\nSentiment:", "N/A"]


def verbalized_prompt(tok, text: str, answer_prefix: str = "\nAnswer:") -> list[int]:
  """The prompt ids PET-style fine-tuning (`task.kind="verbalized"`) trains on for one example with `text`."""
  import types
  from lightft_jax.data.formats import decoder_verbalized
  task = types.SimpleNamespace(source_text=lambda e: f"Review: {e['text']}", verbalizer=("negative", "positive"),
                               answer_prefix=answer_prefix)
  batch = decoder_verbalized(task, [{"text": text, "label": 1}], tok, max_length=64, padding="longest")
  return batch["input_ids"][0][batch["attention_mask"][0] > 0].tolist()


def test_default_prompt_encoding_is_the_tokenizers_own_smollm2():
  from lightft_jax.icl.fewshot import PromptEncoder
  ours, ref = _smollm_tokenizers()
  enc = PromptEncoder(ours)  # add_bos=None: as the tokenizer does; SmolLM2 adds no BOS
  for text in PROMPTS:
    assert enc.context(text) == ref.encode(text) == ref(text)["input_ids"], text
    assert enc.context(text)[0] != ours.bos_token_id
    assert PromptEncoder(ours, add_bos=True).context(text) == [ours.bos_token_id] + ref.encode(text)
    assert PromptEncoder(ours, add_bos=False).context(text) == ref.encode(text)
  assert enc.answer(" positive") == ref.encode(" positive", add_special_tokens=False)
  # fine-tuning's prompt is ICL's default encoding of the same text, so a model before training scores as k=0 ICL
  from lightft_jax.kinds import ANSWER_PREFIX
  assert verbalized_prompt(ours, "a fine film") == enc.context("Review: a fine film" + ANSWER_PREFIX)
  assert verbalized_prompt(ours, "a fine film")[0] != ours.bos_token_id


def test_icl_vs_peft_fine_tuning_and_icl_read_one_prompt_for_each_cue():
  """configs/icl_vs_peft.py's `cue=`: the fine-tuning task's prompt (template + task.answer_prefix) is the ICL
  template's zero-shot prompt, token for token, on real SmolLM2 tokens."""
  from lightft_jax import data
  from lightft_jax.data.formats import decoder_verbalized
  from lightft_jax.icl.fewshot import PromptEncoder
  from lightft_jax.train.config_lib import config_module
  from lightft_jax.train.workload import with_form
  ours, _ = _smollm_tokenizers()
  configs = config_module(Path(__file__).parents[1] / "configs" / "icl_vs_peft.py")
  prompts = {}
  for cue in ("Answer", "Sentiment"):
    ft, icl = configs.get_config(f"method=ia3,cue={cue}"), configs.get_config(f"method=icl,cue={cue}")
    task = with_form(data.get_task(ft.task.name), ft.task.kind, ft.task.template, ft.task.answer_prefix)
    batch = decoder_verbalized(task, [{"text": "a fine film", "label": 1}], ours, max_length=64, padding="longest")
    prompts[cue] = batch["input_ids"][0][batch["attention_mask"][0] > 0].tolist()
    assert prompts[cue] == PromptEncoder(ours).context(icl.prompt.input_template.format(text="a fine film")), cue
    assert ours.decode(prompts[cue]).endswith(f"\n{cue}:")
  assert prompts["Answer"] != prompts["Sentiment"]


def test_default_prompt_encoding_is_the_tokenizers_own_with_bos(tmp_path):
  """A Llama-style tokenizer whose post-processor adds BOS: the default keeps it (once), as transformers does;
  special tokens a post-processor appends after the text are dropped (a prompt is continued)."""
  import json
  import transformers as hf_t
  from tokenizers import Tokenizer as RawTokenizer
  from tokenizers import processors
  from lightft_jax.icl.fewshot import PromptEncoder
  from lightft_jax.models.tokenizer import Tokenizer
  ours_plain, _ = _smollm_tokenizers()
  bos, eos = "<|im_start|>", "<|im_end|>"
  for name, single in (("bos", f"{bos} $A"), ("bos_eos", f"{bos} $A {eos}")):
    raw = RawTokenizer.from_str(ours_plain.tok.to_str())
    raw.post_processor = processors.TemplateProcessing(
        single=single, special_tokens=[(bos, raw.token_to_id(bos)), (eos, raw.token_to_id(eos))])
    folder = tmp_path / name
    folder.mkdir()
    raw.save(str(folder / "tokenizer.json"))
    (folder / "tokenizer_config.json").write_text(json.dumps({"bos_token": bos, "eos_token": eos}))
    ours, ref = Tokenizer.from_file(folder), hf_t.AutoTokenizer.from_pretrained(folder)
    enc = PromptEncoder(ours)
    for text in PROMPTS:
      ids = ref.encode(text)
      assert ids[0] == raw.token_to_id(bos)
      expected = ids if name == "bos" else ids[:-1]
      assert enc.context(text) == expected, (name, text)
      assert PromptEncoder(ours, add_bos=True).context(text) == expected  # never two BOS tokens
      assert PromptEncoder(ours, add_bos=False).context(text) == ref.encode(text, add_special_tokens=False)
    from lightft_jax.kinds import ANSWER_PREFIX
    prompt = verbalized_prompt(ours, "a fine film")  # fine-tuning's prompt: BOS once, no trailing EOS
    assert prompt == enc.context("Review: a fine film" + ANSWER_PREFIX) and prompt[0] == raw.token_to_id(bos)
