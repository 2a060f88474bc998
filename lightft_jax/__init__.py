"""lightft_jax: in-context learning and lightweight fine-tuning of Transformers in JAX / Flax NNX.

  models/     the Transformer family, its heads, generation and HF checkpoint import / export
  peft/       LoRA, prefix, prompt, adapters, IA3, selective tuning, hypernetworks, HF-PEFT I/O
  data/       task registry, Grain / TFDS pipelines and formats, synthetic ICL tasks
  icl/        few-shot prompting, scoring, calibration; the in-context regression and meta-learning objectives
  train/      the one trainer (loop.py: setup / run_steps / finish) and what it trains (workload.py, by
              `train.objective`), mesh and sharding, train / eval steps, losses, evaluators, optimizers,
              checkpoints, logging
  kinds.py    the task-kind registry: per kind (classification, regression, token_classification, qa,
              seq2seq, lm, icl_regression) its model head, formatters per model family, loss and evaluator
  metrics.py  accuracy, F1, span F1, EM, BLEU, ROUGE, perplexity
  plots.py    training curves from metrics.jsonl and metric curves (accuracy against k, error against n)
  jobs.py     what a config's `job` runs: train (every objective, with baselines) | icl_eval
  main.py     the command-line entry point: loads the config once (typed `--config.KEY=VALUE` overrides)
              and runs its job
"""
