"""Few-shot evaluation of a language model on a task: accuracy (plain, length-normalised, PMI,
contextually calibrated) or a generation metric, for each number of demonstrations k.

`evaluate_fewshot` is the library entry; `lightft_jax.icl.run_icl_eval` wraps it into a run directory.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import numpy as np

from lightft_jax import metrics
from lightft_jax.icl import calibration as cal
from lightft_jax.icl.generation import generate_answers
from lightft_jax.icl.prompts import (PromptTemplate, demonstration_labels, order_demonstrations,
                                     select_demonstrations, template_fields)
from lightft_jax.icl.scoring import score_choices
from lightft_jax.models.tokenizer import Tokenizer
from lightft_jax.models.transformer import Transformer


@dataclasses.dataclass(frozen=True)
class FewShotOptions:
  """What varies between few-shot runs (ablations included)."""

  ks: tuple[int, ...] = (0, 1, 2, 4, 8)
  seeds: tuple[int, ...] = (0,)
  selection: str = "random"  # random | balanced | knn
  label_mode: str = "gold"  # gold | random | flipped
  order: str = "as_selected"  # as_selected | random | reverse | by_label
  per_query_demos: bool = False  # random/balanced: new demonstrations per query (knn always is)
  calibrate: bool = True
  content_free_inputs: tuple[str, ...] = cal.CONTENT_FREE_INPUTS
  add_bos: bool | None = None  # None: the tokenizer's own convention (its post-processor); True / False force it
  batch_size: int = 8
  stop_sequences: tuple[str, ...] = ("\n",)
  max_new_tokens: int = 16


class PromptEncoder:
  """Text -> token ids for contexts and answers (answers never get special tokens).

  add_bos=None (the default) encodes a context as the tokenizer itself does, `tokenizer.encode(text)`:
  whatever its post-processor puts before the text (BOS for Llama-style tokenizers, nothing for SmolLM2
  or GPT-2), as transformers' tokenizers with add_special_tokens=True and lm-evaluation-harness do. Special
  tokens a post-processor appends after the text (EOS, [SEP]) are dropped, since a prompt is continued.
  add_bos=True puts the tokenizer's BOS before the plain text whether or not the tokenizer would;
  add_bos=False encodes the plain text only.
  """

  def __init__(self, tokenizer: Tokenizer, add_bos: bool | None = None):
    self.tokenizer = tokenizer
    self.add_bos = add_bos
    self.bos = [tokenizer.bos_token_id] if add_bos and tokenizer.bos_token_id is not None else []

  def context(self, text: str) -> list[int]:
    if self.add_bos is None:
      return self.tokenizer.encode_prompt(text)
    return self.bos + self.tokenizer.encode(text, add_special_tokens=False)

  def answer(self, text: str) -> list[int]:
    return self.tokenizer.encode(text, add_special_tokens=False)


def _check_fits(enc: PromptEncoder, template: PromptTemplate, demos: list[dict], query: dict, labels,
                ids: list[int], answer_len: int, limit: int, k: int):
  if len(ids) + answer_len <= limit:
    return
  q = len(enc.context(template.format_input(query)))
  demo_lens = [len(enc.answer(template.format_input(d) + template.answer(d, y) + template.example_delimiter))
               for d, y in zip(demos, labels)]
  fit, used = 0, q + answer_len
  for n in reversed(demo_lens):
    if used + n > limit:
      break
    fit, used = fit + 1, used + n
  raise ValueError(f"k={k} demonstrations make a prompt of {len(ids)} tokens (+{answer_len} answer tokens) but "
                   f"the model takes at most {limit} positions; only {fit} of these demonstrations fit: "
                   f"lower k to {fit} or use a model with a longer context")


def _content_free_query(template: PromptTemplate, text: str) -> dict:
  return {f: text for f in template_fields(template.input_template)}


def _demo_sets(options: FewShotOptions, k: int, seed: int, pool: list[dict], n_queries: int,
               pool_labels: list[int], num_labels: int, embeddings,
               label_key: str) -> list[tuple[list[int], list[int]]]:
  """Per query: (pool indices of its demonstrations, the labels shown with them)."""
  rng = np.random.default_rng([seed, k])
  per_query = options.per_query_demos or options.selection == "knn"

  def one(qi):
    kw = {}
    if options.selection == "knn":
      kw = dict(query_embedding=embeddings[1][qi], pool_embeddings=embeddings[0])
    idx = select_demonstrations(options.selection, pool, k, rng, label_key=label_key, **kw)
    idx = order_demonstrations(idx, options.order, rng, pool_labels)
    return idx, demonstration_labels([pool_labels[i] for i in idx], options.label_mode, max(num_labels, 1), rng)

  if per_query:
    return [one(qi) for qi in range(n_queries)]
  shared = one(0)
  return [shared] * n_queries


def evaluate_fewshot(model: Transformer, tokenizer: Tokenizer, template: PromptTemplate, pool: list[dict],
                     queries: list[dict], *, options: FewShotOptions = FewShotOptions(),
                     metric_fn: Callable[[list, list], dict] | None = None,
                     embed_fn: Callable[[list[str]], np.ndarray] | None = None) -> dict:
  """Few-shot results for every k in `options.ks`, averaged over `options.seeds`.

  pool: demonstration candidates; queries: evaluated examples (dicts with the template's fields and
  `template.answer_field`). Choice-scored when `template.verbalizers` is set, else generation scored by
  `metric_fn(predictions, references)`. knn selection needs `embed_fn(texts) -> [N,D]`.
  Returns {"per_k": {k: {metric: mean, metric + "_std": std over seeds}}, "per_seed": {...}}.
  """
  enc = PromptEncoder(tokenizer, options.add_bos)
  limit = model.cfg.max_positions
  for q in queries[:1] + pool[:1]:
    template.check_example(q)
  embeddings = None
  if options.selection == "knn":
    if embed_fn is None:
      raise ValueError("selection='knn' needs embed_fn (e.g. lightft_jax.icl.retrieval.minilm_embedder())")
    embeddings = tuple(embed_fn([template.format_input(x) for x in xs]) for xs in (pool, queries))
  choice_scored = template.verbalizers is not None
  if not choice_scored and metric_fn is None:
    raise ValueError("a generation-scored evaluation (template without verbalizers) needs metric_fn")
  num_labels = len(template.verbalizers) if choice_scored else 0
  pool_labels = [int(p[template.answer_field]) if choice_scored else 0 for p in pool]
  answers = [enc.answer(c) for c in template.choices()] if choice_scored else []
  answer_len = max(map(len, answers)) if answers else options.max_new_tokens
  unconditional = None
  if choice_scored:
    unconditional = score_choices(model, [enc.context(template.content_free_answer_context())], [answers],
                                  batch_size=1)[0][0]

  per_seed: dict[int, list[dict]] = {}
  for k in options.ks:
    for seed in options.seeds:
      if k == 0 and per_seed.get(k):  # no demonstrations: every seed scores the same prompts
        per_seed[k].append({**per_seed[k][0], "seed": seed})
        continue
      sets = _demo_sets(options, k, seed, pool, len(queries), pool_labels, num_labels, embeddings,
                        template.answer_field)
      contexts = []
      for q, (idx, labels) in zip(queries, sets):
        demos = [pool[i] for i in idx]
        ids = enc.context(template.build(demos, q, labels if choice_scored else None))
        _check_fits(enc, template, demos, q, labels, ids, answer_len, limit, k)
        contexts.append(ids)
      if choice_scored:
        metrics = _choice_metrics(model, enc, template, pool, queries, sets, contexts, answers, unconditional,
                                  options)
      else:
        preds = generate_answers(model, tokenizer, contexts, stop_sequences=options.stop_sequences,
                                 max_new_tokens=options.max_new_tokens, batch_size=options.batch_size)
        metrics = metric_fn(preds, [q[template.answer_field] for q in queries])
      per_seed.setdefault(k, []).append({"seed": seed, **metrics})
  per_k = {}
  for k, rows in per_seed.items():
    names = [n for n in rows[0] if n != "seed"]
    per_k[k] = {n: float(np.mean([r[n] for r in rows])) for n in names}
    per_k[k].update({n + "_std": float(np.std([r[n] for r in rows])) for n in names})
  return {"per_k": per_k, "per_seed": per_seed}


def _choice_metrics(model, enc, template, pool, queries, sets, contexts, answers, unconditional,
                    options) -> dict:
  n = len(queries)
  all_contexts = list(contexts)
  cf_slot = {}  # demonstration set -> index of its first content-free context
  if options.calibrate:
    for idx, labels in sets:
      key = (tuple(idx), tuple(labels))
      if key not in cf_slot:
        cf_slot[key] = len(all_contexts)
        demos = [pool[i] for i in idx]
        all_contexts += [enc.context(template.build(demos, _content_free_query(template, t), labels))
                         for t in options.content_free_inputs]
  ll, _ = score_choices(model, all_contexts, [answers] * len(all_contexts), batch_size=options.batch_size)
  ll = np.stack(ll)
  gold = np.array([int(q[template.answer_field]) for q in queries])
  acc = lambda pred: float(np.mean(pred == gold))
  pred = cal.predict(ll[:n])
  out = {"acc": acc(pred),
         "acc_norm": acc(cal.predict_length_normalised(ll[:n], template.choices())),
         "acc_mi": acc(cal.predict_mutual_information(ll[:n], unconditional)),
         "macro_f1": metrics.f1(pred, gold)}  # of the plain rule: reads a skewed test split where acc cannot
  if options.calibrate:
    m = len(options.content_free_inputs)
    priors = np.stack([cal.content_free_prior(ll[cf_slot[(tuple(i), tuple(y))]:][:m]) for i, y in sets])
    out["acc_calibrated"] = acc(cal.predict_calibrated(ll[:n], priors))
  out.update({f"pred_frac_{c}": float(np.mean(pred == c)) for c in range(len(answers))})  # label bias
  return out
