"""RoBERTa (HF `roberta`): BERT's body and weight names; positions start at pad_token_id + 1, no pooler."""

from __future__ import annotations

from lightft_jax.models.archs import bert
from lightft_jax.models.archs.base import Architecture, HFClass, dense

DEFAULTS = {**bert.DEFAULTS, "model_type": "roberta", "position_offset": 2, "type_vocab_size": 1, "pad_token_id": 1,
            "pooler": False}
PRESETS = {
    "roberta-base": dict(vocab_size=50265, d_model=768, n_layers=12, n_heads=12, d_ff=3072, max_positions=514),
}


def from_hf(hf: dict) -> dict:
  return bert.encoder_fields(hf, hf.get("pad_token_id", 1) + 1)


def checkpoint_fields(cfg, task: str, names: set[str], prefix: str, head_style: str | None) -> dict:
  """RoBERTa's classifier has its own dense layer; the pooler is kept only for base models that have one."""
  return dict(pooler=prefix + "pooler.dense.weight" in names and task == "base")


CLASSES = {
    "base": HFClass("RobertaModel"),
    "classification": HFClass("RobertaForSequenceClassification", "roberta.",
                              tuple(dense("head.dense", "classifier.dense")
                                    + dense("head.out", "classifier.out_proj"))),
    "token_classification": HFClass("RobertaForTokenClassification", "roberta.",
                                    tuple(dense("head.out", "classifier"))),
    "qa": HFClass("RobertaForQuestionAnswering", "roberta.", tuple(dense("head.out", "qa_outputs"))),
}
CLASSES["regression"] = CLASSES["classification"]

ARCH = Architecture(model_type="roberta", defaults=DEFAULTS, presets=PRESETS, base_preset="roberta-base",
                    config_fields=bert.CONFIG_FIELDS, from_hf=from_hf, to_hf=bert.to_hf, body=bert.body,
                    classes=CLASSES, head_style="roberta", checkpoint_fields=checkpoint_fields)
