"""`run_icl_eval(config, workdir)`: few-shot evaluation of a language model into a run directory.

Writes config.json, metrics.jsonl (one row per k), accuracy_vs_k.png and, last, results.json (metrics per k, seeds
averaged). Like a training run's, results.json says `"status": "completed"` (so `launch` skips a finished point and
`launch.aggregate` reads it), `"trainable_params": 0`, `step` 0 and `wall_time_s`; its `test` section holds every
k's metrics on the query split as `k<K>/<metric>` (e.g. `k16/acc`, `k16/acc_calibrated`). See configs/icl_eval.py for the keys.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import ml_collections

from lightft_jax.icl.fewshot import FewShotOptions, evaluate_fewshot
from lightft_jax.plots import plot_curves
from lightft_jax.icl.prompts import PromptTemplate


def load_lm(model_cfg: ml_collections.ConfigDict, seed: int = 0):
  """(LM, tokenizer) from the `model` section (`train.build`: "smollm2" (the bundled GGUF), an HF checkpoint
  directory, a .gguf file, or a preset with random weights and `model.tokenizer`)."""
  from lightft_jax.train.build import build_model, build_tokenizer, is_checkpoint_dir
  tokenizer = build_tokenizer(model_cfg)
  vocab = None if is_checkpoint_dir(model_cfg.name) else tokenizer.vocab_size
  return build_model(model_cfg, task="lm", seed=seed, vocab_size=vocab), tokenizer


def make_template(prompt_cfg: ml_collections.ConfigDict, task) -> PromptTemplate:
  """The prompt template from config, falling back to the task's fields and verbalizer / label names."""
  choice_scored = task.kind == "classification"
  verbalizers = tuple(prompt_cfg.verbalizers) or (
      (task.verbalizer or tuple(n.replace("_", " ") for n in task.label_names)) if choice_scored else None)
  if prompt_cfg.choice_scored and not verbalizers:
    raise ValueError(f"task {task.name!r} (kind {task.kind!r}) has no answer choices for a choice-scored eval; "
                     "set prompt.verbalizers or prompt.choice_scored=False to score by generation")
  template = prompt_cfg.input_template or "\n".join(f"{f}: {{{f}}}" for f in task.text_fields) + "\nAnswer:"
  return PromptTemplate(template, verbalizers=verbalizers if prompt_cfg.choice_scored else None,
                        label_delimiter=prompt_cfg.label_delimiter, example_delimiter=prompt_cfg.example_delimiter,
                        instruction=prompt_cfg.instruction, answer_field=prompt_cfg.answer_field)


def parse_add_bos(value) -> bool | None:
  """Config value of `icl.add_bos` -> FewShotOptions.add_bos: "auto" / None -> None (the tokenizer's own
  convention), "true" / True -> True, "false" / False -> False."""
  if value is None or isinstance(value, bool):
    return value
  table = {"auto": None, "true": True, "false": False}
  if str(value).lower() not in table:
    raise ValueError(f"icl.add_bos must be 'auto', 'true' or 'false', got {value!r}")
  return table[str(value).lower()]


def fewshot_options(icl: ml_collections.ConfigDict) -> FewShotOptions:
  return FewShotOptions(ks=tuple(icl.ks), seeds=tuple(icl.seeds), selection=icl.selection,
                        label_mode=icl.label_mode, order=icl.order, per_query_demos=icl.per_query_demos,
                        calibrate=icl.calibrate, content_free_inputs=tuple(icl.content_free_inputs),
                        add_bos=parse_add_bos(icl.add_bos), batch_size=icl.batch_size, stop_sequences=tuple(icl.stop_sequences),
                        max_new_tokens=icl.max_new_tokens)


def run_icl_eval(config: ml_collections.ConfigDict, workdir: str | Path) -> dict:
  """Runs the few-shot evaluation described by `config` (configs/icl_eval.py) and writes `workdir`."""
  from lightft_jax import data
  t0 = time.time()
  workdir = Path(workdir)
  workdir.mkdir(parents=True, exist_ok=True)
  (workdir / "config.json").write_text(config.to_json(indent=2))
  task = data.get_task(config.task.name, **dict(config.task.options))
  template = make_template(config.prompt, task)
  data_dir = config.task.data_dir or None
  split = config.task.test_split  # the queries; demonstrations come from task.train_split
  pool = task.examples(config.task.train_split, data_dir, limit=config.icl.pool_limit or None)
  queries = task.examples(split, data_dir, limit=config.icl.query_limit or None)
  model, tokenizer = load_lm(config.model, config.seed)
  embed_fn = None
  if config.icl.selection == "knn":
    from lightft_jax.icl.retrieval import minilm_embedder
    embed_fn = minilm_embedder()
  options = fewshot_options(config.icl)
  out = evaluate_fewshot(model, tokenizer, template, pool, queries, options=options,
                         metric_fn=None if template.verbalizers else task.metrics, embed_fn=embed_fn)
  with open(workdir / "metrics.jsonl", "w") as f:
    for k, row in out["per_k"].items():
      f.write(json.dumps({"step": k, "split": split, "k": k, **row}, allow_nan=False) + "\n")
  ks = sorted(out["per_k"])
  names = [n for n in out["per_k"][ks[0]] if not n.endswith("_std")]
  plot_curves(workdir / "accuracy_vs_k.png", ks, {n: [out["per_k"][k][n] for k in ks] for n in names},
              xlabel="k (demonstrations)", ylabel="score",
              title=f"{task.name}: {config.model.name}, {len(queries)} {split} examples",
              chance=1.0 / len(template.verbalizers) if template.verbalizers else None)
  import jax
  from lightft_jax.train.logger import host_cpu
  from lightft_jax.train.loop import write_json
  results = {"status": "completed", "step": 0, "trainable_params": 0,
             "task": task.name, "split": split, "num_queries": len(queries), "pool_size": len(pool),
             "model": config.model.name, "label_mode": options.label_mode, "selection": options.selection,
             "seeds": list(options.seeds), "per_k": {str(k): v for k, v in out["per_k"].items()},
             "per_seed": {str(k): v for k, v in out["per_seed"].items()},
             "test": {f"k{k}/{n}": v for k in ks for n, v in out["per_k"][k].items()
                      if isinstance(v, (int, float)) and not isinstance(v, bool)},
             "device": f"{jax.device_count()} x {jax.devices()[0].device_kind}", "host": host_cpu(),
             "wall_time_s": time.time() - t0}
  write_json(workdir / "results.json", results)  # last, atomically: its status marks the run finished
  return results
