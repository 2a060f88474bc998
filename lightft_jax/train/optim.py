"""Optimizers and learning-rate schedules from the `optimizer` / `schedule` config sections (optax).

Optimizers (`optimizer.name`): adamw (b1, b2, eps, decoupled weight decay), adafactor, sgd (momentum; 0 = none),
lion (b1, b2), rmsprop (optax.rmsprop: `decay` of the squared-gradient average, `eps`, `momentum` (0 = none),
`centered`). sgd and rmsprop add weight decay to the gradient (L2, as torch's `weight_decay` does); every
optimizer decays only where the mask below says, and all are preceded by global-norm clipping (`clip_norm`).

Parameters are a pure dict tree (`nnx.to_pure_dict` of the trainable state); their dotted paths
("encoder.layers.0.attn.query.lora_a") select learning-rate groups and the weight-decay mask by regex.
"""

from __future__ import annotations

import re
from typing import Any

import jax
import ml_collections
import optax

OPTIMIZERS = ("adamw", "adafactor", "sgd", "lion", "rmsprop")
SCHEDULES = ("cosine", "linear", "constant")


def param_paths(params: Any) -> Any:
  """Tree like `params` whose leaves are dotted path strings."""
  return jax.tree_util.tree_map_with_path(
      lambda p, _: ".".join(str(getattr(k, "key", getattr(k, "idx", k))) for k in p), params)


def make_schedule(cfg: ml_collections.ConfigDict, lr: float, total_steps: int) -> optax.Schedule:
  """Linear warmup from 0 to `lr` over `warmup_steps`, then cosine / linear decay to lr*end_factor, or flat."""
  if cfg.name not in SCHEDULES:
    raise ValueError(f"unknown schedule {cfg.name!r}; choose from {SCHEDULES}")
  warmup = int(cfg.warmup_steps)
  if total_steps == 0:  # no step will be taken (the starting model is only evaluated)
    return optax.constant_schedule(lr)
  if not 0 <= warmup < total_steps:
    raise ValueError(f"schedule.warmup_steps={warmup} must be in [0, total_steps={total_steps})")
  decay_steps = max(total_steps - warmup, 1)
  end = lr * cfg.end_factor
  if cfg.name == "cosine":
    main = optax.cosine_decay_schedule(lr, decay_steps, alpha=cfg.end_factor)
  elif cfg.name == "linear":
    main = optax.linear_schedule(lr, end, decay_steps)
  else:
    main = optax.constant_schedule(lr)
  if not warmup:
    return main
  return optax.join_schedules([optax.linear_schedule(0.0, lr, warmup), main], [warmup])


def group_labels(params: Any, groups) -> Any:
  """Label each parameter with the index (as a string) of the first `groups` regex that matches its path."""
  patterns = [re.compile(g[0]) for g in groups]

  def label(path):
    return next((str(i) for i, p in enumerate(patterns) if p.search(path)), "default")

  return jax.tree.map(label, param_paths(params))


def decay_mask(params: Any, no_decay: str) -> Any:
  """True where weight decay applies: matrices whose path does not match `no_decay` (norms, biases)."""
  pattern = re.compile(no_decay) if no_decay else None
  return jax.tree.map(lambda path, x: x.ndim >= 2 and not (pattern and pattern.search(path)),
                      param_paths(params), params)


def _base(cfg: ml_collections.ConfigDict, lr: optax.Schedule, mask: Any) -> optax.GradientTransformation:
  wd = cfg.weight_decay
  if cfg.name == "adamw":
    return optax.adamw(lr, b1=cfg.b1, b2=cfg.b2, eps=cfg.eps, weight_decay=wd, mask=mask)
  if cfg.name == "adafactor":
    return optax.adafactor(lr, weight_decay_rate=wd or None, weight_decay_mask=mask)
  if cfg.name == "sgd":
    return optax.chain(optax.add_decayed_weights(wd, mask), optax.sgd(lr, momentum=cfg.momentum or None))
  if cfg.name == "lion":
    return optax.lion(lr, b1=cfg.b1, b2=cfg.b2, weight_decay=wd, mask=mask)
  if cfg.name == "rmsprop":
    return optax.chain(optax.add_decayed_weights(wd, mask),
                       optax.rmsprop(lr, decay=cfg.decay, eps=cfg.eps, centered=cfg.centered,
                                     momentum=cfg.momentum or None))
  raise ValueError(f"unknown optimizer {cfg.name!r}; choose from {OPTIMIZERS}")


def make_optimizer(opt: ml_collections.ConfigDict, sched: ml_collections.ConfigDict, params: Any,
                   total_steps: int) -> optax.GradientTransformation:
  """Global-norm clipping, then the optimizer with per-group learning rates (multipliers of `opt.lr`)."""
  if opt.name not in OPTIMIZERS:
    raise ValueError(f"unknown optimizer {opt.name!r}; choose from {OPTIMIZERS}")
  groups = tuple(tuple(g) for g in opt.lr_groups)
  for g in groups:
    if len(g) != 2:
      raise ValueError(f"optimizer.lr_groups entries are (regex, lr multiplier) pairs, got {g!r}")
  mask = decay_mask(params, opt.no_decay)
  transforms = {"default": _base(opt, make_schedule(sched, opt.lr, total_steps), mask)}
  for i, (_, mult) in enumerate(groups):
    transforms[str(i)] = _base(opt, make_schedule(sched, opt.lr * float(mult), total_steps), mask)
  tx = optax.multi_transform(transforms, group_labels(params, groups)) if groups else transforms["default"]
  return optax.chain(optax.clip_by_global_norm(opt.clip_norm), tx) if opt.clip_norm else tx
