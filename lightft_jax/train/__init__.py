"""Training: config -> model (+ PEFT) -> sharded steps -> checkpoints, metrics and results.

  loop.py         `train(config, workdir)` = setup -> run_steps -> finish: the one trainer, resumable
  workload.py     what trains, by `train.objective`: model + batches + objective (+ gradient, evaluation);
                  supervised tasks here, in-context regression and meta-learning in `lightft_jax.icl`
  steps.py        the jitted train / eval steps over the trainable part of an NNX model (pluggable loss and
                  gradient estimator)
  losses.py       one loss (+ predictions) per objective; which kind uses which is `lightft_jax.kinds`
  evaluate.py     whole-split evaluation and one evaluator per kind (label metrics, spans, text, perplexity)
  sharding.py     mesh and logical-axis rules;  distributed.py  multi-host helpers
  optim.py        optimizers and schedules;  checkpoint.py  orbax checkpoints;  logger.py  metrics and W&B
  build.py        model and tokenizer from the config;  config_lib.py  config helpers;  compare.py (plots: lightft_jax.plots)

`lightft_jax.jobs` maps the config's `job` to what runs (`train`: this package; `icl_eval`: `lightft_jax.icl`).
Nothing here branches on a task kind or knows which PEFT method is used: a kind's head, loss and evaluator
come from `lightft_jax.kinds.get_kind(task.kind)`, and what trains is `peft.trainable_filter(model)`.
"""
