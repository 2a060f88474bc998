"""BERT (HF `bert`): post-LN encoder, learned positions, token types, pooler."""

from __future__ import annotations

from lightft_jax.models.archs.base import (HF_ACTIVATIONS, Architecture, HFClass, activation, dense, dropout_fields,
                                           embed, layers, norm)

DEFAULTS = dict(arch="encoder", model_type="bert", position="learned", prenorm=False, embed_norm=True,
                final_norm=False, norm_eps=1e-12, type_vocab_size=2, activation="gelu", pooler=True,
                tie_embeddings=True)
PRESETS = {
    "tiny-bert": dict(vocab_size=1024, d_model=64, n_layers=2, n_heads=4, d_ff=128, max_positions=128),
    "bert-base": dict(vocab_size=30522, d_model=768, n_layers=12, n_heads=12, d_ff=3072, max_positions=512),
}

CONFIG_FIELDS = (("vocab_size", "vocab_size"), ("hidden_size", "d_model"), ("num_hidden_layers", "n_layers"),
                 ("num_attention_heads", "n_heads"), ("intermediate_size", "d_ff"),
                 ("type_vocab_size", "type_vocab_size"), ("layer_norm_eps", "norm_eps"),
                 ("pad_token_id", "pad_token_id"), ("initializer_range", "initializer_range"))


def encoder_fields(hf: dict, position_offset: int) -> dict:
  """Fields of a BERT-style encoder whose learned positions start at `position_offset`; dropout from
  hidden_dropout_prob and attention_probs_dropout_prob (BertConfig's defaults 0.1)."""
  if hf.get("position_embedding_type", "absolute") != "absolute":
    raise ValueError(f"position_embedding_type={hf['position_embedding_type']!r} is not supported; "
                     "only 'absolute'")
  return dict(activation=activation(hf.get("hidden_act", "gelu")), position_offset=position_offset,
              max_positions=hf.get("max_position_embeddings", 512) - position_offset,
              **dropout_fields(hf, "hidden_dropout_prob", 0.1, "attention_probs_dropout_prob", 0.1))


def from_hf(hf: dict) -> dict:
  return encoder_fields(hf, 0)


def to_hf(cfg) -> dict:
  return dict(hidden_act=HF_ACTIVATIONS[cfg.activation],
              max_position_embeddings=cfg.max_positions + cfg.position_offset, position_embedding_type="absolute",
              hidden_dropout_prob=cfg.dropout, attention_probs_dropout_prob=cfg.attention_dropout)


def body(c) -> list:
  layer = (dense("encoder.layers.{i}.attn.query", "encoder.layer.{i}.attention.self.query")
           + dense("encoder.layers.{i}.attn.key", "encoder.layer.{i}.attention.self.key")
           + dense("encoder.layers.{i}.attn.value", "encoder.layer.{i}.attention.self.value")
           + dense("encoder.layers.{i}.attn.out", "encoder.layer.{i}.attention.output.dense")
           + norm("encoder.layers.{i}.attn_norm", "encoder.layer.{i}.attention.output.LayerNorm")
           + dense("encoder.layers.{i}.mlp.up", "encoder.layer.{i}.intermediate.dense")
           + dense("encoder.layers.{i}.mlp.down", "encoder.layer.{i}.output.dense")
           + norm("encoder.layers.{i}.mlp_norm", "encoder.layer.{i}.output.LayerNorm"))
  return (embed("embed.tokens", "embeddings.word_embeddings.weight")
          + embed("embed.positions", "embeddings.position_embeddings.weight")
          + embed("embed.token_types", "embeddings.token_type_embeddings.weight")
          + norm("embed.norm", "embeddings.LayerNorm") + layers(c.n_layers, layer)
          + dense("pooler", "pooler.dense"))


def checkpoint_fields(cfg, task: str, names: set[str], prefix: str, head_style: str | None) -> dict:
  """The pooler is kept when the checkpoint has one (base models) and for classification with BERT's own
  head (it reads the pooled output; other head styles pool themselves)."""
  has_pooler = prefix + "pooler.dense.weight" in names
  return dict(pooler=(has_pooler and task == "base") or (task in ("classification", "regression")
                                                         and head_style == "bert"))


_CLASSIFIER = tuple(dense("head.out", "classifier"))
CLASSES = {
    "base": HFClass("BertModel"),
    "classification": HFClass("BertForSequenceClassification", "bert.", _CLASSIFIER),
    "token_classification": HFClass("BertForTokenClassification", "bert.", _CLASSIFIER),
    "qa": HFClass("BertForQuestionAnswering", "bert.", tuple(dense("head.out", "qa_outputs"))),
}
CLASSES["regression"] = CLASSES["classification"]  # HF regression is sequence classification with one label

ARCH = Architecture(model_type="bert", defaults=DEFAULTS, presets=PRESETS, base_preset="tiny-bert",
                    config_fields=CONFIG_FIELDS, from_hf=from_hf, to_hf=to_hf, body=body, classes=CLASSES,
                    head_style="bert", checkpoint_fields=checkpoint_fields)
