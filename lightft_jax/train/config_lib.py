"""Config helpers shared by every file in configs/: the base training config, `key=value` arguments, locking.

Configs follow big_vision: `get_config(arg)` where `arg` is `"key=value,key2=value2"`; values are parsed as
Python literals when they can be (`lr=1e-3`, `targets=qv`, `steps=100`). Dotted keys reach into sections.
"""

from __future__ import annotations

import ast
import difflib
import importlib.util
from pathlib import Path
from typing import Any, Sequence

import ml_collections

from lightft_jax.kinds import ANSWER_PREFIX

WANDB_MODES = ("offline", "online", "disabled")
# Sections whose keys are not fixed by the config file: the chosen PEFT method's options, TransformerConfig
# overrides and task options. New keys may be set there; their owners validate them.
OPEN_SECTIONS = ("peft", "model.overrides", "task.options")


def flat_keys(cfg: ml_collections.ConfigDict, prefix: str = "") -> list[str]:
  """Every dotted key of `cfg`, sections included: ["model", "model.name", ...]."""
  keys = []
  for k, v in cfg.items():
    keys.append(prefix + k)
    if isinstance(v, ml_collections.ConfigDict):
      keys += flat_keys(v, prefix + k + ".")
  return keys


def unknown_key_error(cfg: ml_collections.ConfigDict, key: str) -> KeyError:
  """KeyError naming `key` and the nearest valid keys of `cfg`."""
  valid = flat_keys(cfg)
  near = difflib.get_close_matches(key, valid, n=3, cutoff=0.5)
  hint = f"; did you mean {', '.join(near)}?" if near else ""
  return KeyError(f"unknown config key {key!r}{hint} Valid keys: {', '.join(valid)}")


def flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
  """{dotted key: leaf value} of a nested ConfigDict or dict (an empty section has no keys)."""
  out: dict[str, Any] = {}
  for k, v in tree.items():
    if isinstance(v, (dict, ml_collections.ConfigDict)):
      out.update(flatten(v, f"{prefix}{k}."))
    else:
      out[prefix + k] = v
  return out


def check_key(cfg: ml_collections.ConfigDict, key: str) -> None:
  """Raises `unknown_key_error` unless the dotted `key` exists in `cfg`."""
  node: Any = cfg
  for part in key.split("."):
    if not isinstance(node, ml_collections.ConfigDict) or part not in node:
      raise unknown_key_error(cfg, key)
    node = node[part]


def parse_value(text: str) -> Any:
  """Python literal when `text` is one (1, 1e-3, True, None, (1, 2)), else the string itself."""
  try:
    return ast.literal_eval(text)
  except (ValueError, SyntaxError):
    return text


def parse_arg(arg: str | None, **defaults) -> ml_collections.ConfigDict:
  """`"a=1,b=x"` -> ConfigDict(a=1, b="x") over `defaults`; an unknown name is a clear error."""
  out = ml_collections.ConfigDict(defaults)
  if not arg:
    return out
  for item in arg.split(","):
    if not item.strip():
      continue
    if "=" not in item:
      raise ValueError(f"config argument {item!r} is not key=value; valid keys: {sorted(defaults)}")
    key, value = (s.strip() for s in item.split("=", 1))
    if key not in defaults:
      near = difflib.get_close_matches(key, list(defaults), n=3, cutoff=0.5)
      hint = f"; did you mean {', '.join(near)}?" if near else ""
      raise KeyError(f"unknown config argument {key!r}{hint} Valid arguments: {sorted(defaults)}")
    old = defaults[key]
    if isinstance(old, str):  # text stays text: k=16 for a "0+1+2" default is "16"
      out[key] = value
    elif isinstance(old, (int, float)) and not isinstance(old, bool):
      out[key] = type(old)(parse_value(value))
    else:
      out[key] = parse_value(value)
  return out


def set_key(cfg: ml_collections.ConfigDict, key: str, value: Any) -> None:
  """cfg["a.b.c"] = value, with the nearest-key error for a misspelled key."""
  check_key(cfg, key)
  *parents, last = key.split(".")
  node = cfg
  for p in parents:
    node = node[p]
  node[last] = value


def coerce(old: Any, text: str, key: str) -> Any:
  """The command-line text of `--config.KEY=text` as a value of the type `old` has (what the config file set)."""
  if isinstance(old, bool):
    table = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}
    if text.lower() not in table:
      raise ValueError(f"config key {key!r} is a boolean; got {text!r}")
    return table[text.lower()]
  if isinstance(old, str):
    return text
  value = parse_value(text)
  if isinstance(old, int):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or int(value) != value:
      raise ValueError(f"config key {key!r} is an integer; got {text!r}")
    return int(value)
  if isinstance(old, float):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
      raise ValueError(f"config key {key!r} is a number; got {text!r}")
    return float(value)
  if isinstance(old, (tuple, list)):
    if isinstance(value, (tuple, list)):
      return tuple(value)
    return tuple(parse_value(v.strip()) for v in text.split(",") if v.strip())
  if isinstance(old, ml_collections.ConfigDict):
    if not isinstance(value, dict):
      raise ValueError(f"config key {key!r} is a section; set its keys, or give a dict literal, got {text!r}")
    return ml_collections.ConfigDict(value)
  return value


def apply_override(cfg: ml_collections.ConfigDict, key: str, text: str) -> None:
  """`--config.KEY=text`: sets an existing key (typed as the config file set it; a misspelled key is an error
  naming the nearest valid keys) or a new key inside one of `OPEN_SECTIONS`."""
  *parents, last = key.split(".")
  in_open = any(key.startswith(s + ".") for s in OPEN_SECTIONS)
  try:
    check_key(cfg, key)
    exists = True
  except KeyError:
    if not in_open:
      raise
    exists = False
  node = cfg
  for i, p in enumerate(parents):
    if p not in node:
      raise unknown_key_error(cfg, ".".join(parents[:i + 1]))
    node = node[p]
  node[last] = coerce(node[last], text, key) if exists else parse_value(text)


def config_module(path: str | Path):
  """The config file at `path` as a module (also how a config builds on another: `config_module(
  Path(__file__).with_name("icl_eval.py")).get_config(...)`)."""
  if not Path(path).is_file():
    raise FileNotFoundError(f"config file {str(path)!r} does not exist")
  module_spec = importlib.util.spec_from_file_location(f"_config_{Path(path).stem}", path)
  module = importlib.util.module_from_spec(module_spec)
  module_spec.loader.exec_module(module)
  return module


def load_config(spec: str, overrides: Sequence[tuple[str, str]] = ()) -> ml_collections.ConfigDict:
  """`configs/NAME.py[:ARG]` -> its `get_config(ARG)`, with the `(dotted key, text)` overrides applied, then
  validated and locked (`finalize`). The config file runs once."""
  path, _, arg = spec.partition(":")
  module = config_module(path)
  cfg = module.get_config(arg) if arg else module.get_config()
  for key, text in overrides:
    apply_override(cfg, key, text)
  from lightft_jax import peft  # the PEFT section against its method's options, before any model loads
  peft.check_config(cfg.peft)
  return finalize(cfg)


PRESET_VOCAB = {"tiny-bert": 30522}  # presets a smoke run may name, with MiniLM's vocabulary size


def smoke_arg(arg: str | None) -> tuple[str, bool]:
  """(the config argument without `smoke`, whether it was there); `smoke`, `smoke=True` and `smoke=1` all work."""
  items = [s.strip() for s in (arg or "").split(",") if s.strip()]
  smoke = any(s in ("smoke", "smoke=True", "smoke=1") for s in items)
  return ",".join(s for s in items if not s.startswith("smoke")), smoke


def smoke_model(c: ml_collections.ConfigDict, model: str) -> None:
  """A smoke run's model: `model` (default tiny-bert, random init) with all-MiniLM-L6-v2's tokenizer."""
  from lightft_jax.models.assets import minilm_dir
  c.model.name = model or "tiny-bert"
  if c.model.name in PRESET_VOCAB:
    c.model.tokenizer = str(minilm_dir())
    c.model.overrides = {"vocab_size": PRESET_VOCAB[c.model.name]}


def smoke_run(c: ml_collections.ConfigDict, model: str, steps: int) -> None:
  """A CPU smoke run of a paper-sized config: `smoke_model`, `steps` steps (default 2) logged each step, 64
  evaluation examples padded to the longest, one evaluation at the end, synchronous checkpoints, no W&B run,
  no progress bar."""
  smoke_model(c, model)
  c.task.eval_limit = 64
  c.task.padding = "longest"
  c.epochs, c.total_steps = 0.0, steps or 2
  c.log_every, c.eval_every, c.checkpoint_every = 1, 0, 0
  c.checkpoint.async_save = False
  c.wandb.mode = "disabled"
  c.logging.progress = False


def base_config() -> ml_collections.ConfigDict:
  """Every section and top-level key a training config has, with defaults; configs override what they need."""
  c = ml_collections.ConfigDict()
  c.job = "train"  # what main.py runs: a name in lightft_jax.jobs (train | icl_eval)
  c.seed = 0
  c.total_steps = 100
  c.epochs = 0.0  # > 0: total_steps = ceil(epochs * steps per epoch of the training split), set when the run starts
  c.batch_size = 32
  c.log_every = 10
  c.eval_every = 0  # 0: evaluate only at the end
  c.checkpoint_every = 0  # 0: save only at the end (and on SIGTERM)

  c.train = ml_collections.ConfigDict()
  # What trains (lightft_jax.train.workload): supervised (the task below) | icl_regression | metaicl | reptile |
  # fomaml; each objective's own settings live in its own section (regression, meta).
  c.train.objective = "supervised"
  # Steps whose loss, gradient or update is NaN/inf are never applied. Up to this many such steps in the
  # whole run (in total, not consecutively; a resume keeps the count) are skipped, each consuming its
  # batch; the next one stops the run with TrainingDiverged.
  c.train.skip_nonfinite = 0

  c.model = ml_collections.ConfigDict()
  c.model.name = "tiny-bert"  # a preset of lightft_jax.models.PRESETS or an HF checkpoint directory
  c.model.overrides = ml_collections.ConfigDict()  # TransformerConfig fields for presets (vocab_size=...)
  c.model.tokenizer = ""  # tokenizer.json file or directory; default: the HF directory
  c.model.dtype = "float32"
  c.model.max_length = 128
  c.model.quantize = ""  # "int8" | "nf4" | "q4_1": frozen block projections kept blockwise-quantized (models/quant.py)
  c.model.head_style = ""  # classification pooling (models.heads.HEAD_STYLES: mean, bert, ...); "": the architecture's own

  c.peft = ml_collections.ConfigDict({"method": "full"})

  c.task = ml_collections.ConfigDict()
  c.task.name = "rotten_tomatoes"
  c.task.options = ml_collections.ConfigDict()  # keyword options for data.get_task
  c.task.data_dir = ""
  c.task.train_split = "train"
  c.task.eval_split = "validation"
  c.task.test_split = "test"  # evaluated once at the end; "" to skip
  c.task.eval_limit = 0  # 0: the whole split
  c.task.padding = "max_length"  # max_length | longest | bucket (data.make_loader)
  c.task.kind = ""  # "" = the task's own kind; "verbalized": a classification task as PET-style prompt + verbalizer
  c.task.template = ""  # "": the task's own prompt template; e.g. "Review: {text}" (str.format over the fields)
  c.task.answer_prefix = ANSWER_PREFIX  # decoders: the prompt is the template + this, then the answer
  c.task.model_family = ""  # "" follows the model architecture (encoder / decoder / encoder_decoder)
  # Multi-task runs (lightft_jax.data.mixture; configs/multitask.py): several classification tasks in one run.
  c.task.mixture = ()  # task names or (name, {options}); () = the single task.name
  c.task.mixture_sampling = "proportional"  # proportional | uniform | temperature (p_i ~ n_i^(1/T))
  c.task.temperature = 1.0
  c.task.mixture_size_cap = 0  # > 0: T5's K, each task counted as at most this many examples
  c.task.mixture_heads = "per_task"  # per_task: each task its own classes of one classifier | shared
  c.task.mixture_window = 1000  # every window of this many examples holds each task's exact share

  c.optimizer = ml_collections.ConfigDict()
  c.optimizer.name = "adamw"  # adamw | adafactor | sgd | lion | rmsprop
  c.optimizer.lr = 1e-3
  c.optimizer.weight_decay = 0.0
  c.optimizer.b1 = 0.9
  c.optimizer.b2 = 0.999
  c.optimizer.eps = 1e-8
  c.optimizer.momentum = 0.9  # sgd, rmsprop (0: none; optax.rmsprop's own default is none)
  c.optimizer.decay = 0.9  # rmsprop: decay of the moving average of squared gradients
  c.optimizer.centered = False  # rmsprop: divide by the centred second moment (variance)
  c.optimizer.clip_norm = 1.0  # 0: no clipping
  c.optimizer.grad_accum_steps = 1
  c.optimizer.lr_groups = ()  # ((regex over parameter paths, lr multiplier), ...)
  c.optimizer.no_decay = r"(^|\.)(bias|scale|embedding)$|norm"  # regex: parameters without weight decay

  c.schedule = ml_collections.ConfigDict()
  c.schedule.name = "cosine"  # cosine | linear | constant
  c.schedule.warmup_steps = 0
  c.schedule.end_factor = 0.0  # final lr as a fraction of the peak (cosine / linear)

  c.mesh = ml_collections.ConfigDict()
  c.mesh.data = -1  # -1: every device not used by the other axes
  c.mesh.fsdp = 1
  c.mesh.tensor = 1
  c.mesh.rules = ()  # ((logical axis, mesh axis or None), ...) overriding train.sharding.DEFAULT_RULES

  c.checkpoint = ml_collections.ConfigDict()
  c.checkpoint.max_to_keep = 2
  c.checkpoint.async_save = True
  c.checkpoint.keep_best = True

  c.eval = ml_collections.ConfigDict()
  c.eval.metric = ""  # metric for keep-best; "" = the task's first metric
  c.eval.mode = "max"  # max | min
  c.eval.batch_size = 0  # 0: batch_size
  c.eval.held_out_task = ""  # multi-task: also evaluate this unseen task from its context (no gradient step)
  c.eval.context_k = 0  # examples per task that make a context-conditioned method's condition
  c.eval.context_encoder = ""  # "": all-MiniLM-L6-v2
  c.eval.at_start = False  # also evaluate before the first step (logged at step 0; results.json "eval_at_start")
  c.eval.patience = 0  # > 0: stop when this many periodic evaluations in a row did not improve eval.metric
  c.eval.report_every_eval = True  # classification report (reports/eval_step_N.txt) at every evaluation
  c.eval.max_new_tokens = 0  # tokens seq2seq evaluation generates (whatever the reference length); 0: model.max_length

  c.logging = ml_collections.ConfigDict()
  c.logging.progress = True
  c.logging.plots = True
  c.logging.peak_tflops = None  # per-device peak TFLOP/s for MFU; None: inferred for H100/H200/A100, else no MFU

  c.wandb = ml_collections.ConfigDict()
  c.wandb.mode = "offline"
  c.wandb.project = "lightft_jax"
  c.wandb.name = ""
  c.wandb.tags = ()

  c.baselines = ()  # ((name, {dotted key: value}), ...): extra runs compared with this one (see main.py)

  c.distributed = ml_collections.ConfigDict()
  c.distributed.coordinator_address = ""  # "" = from the environment (or single process)
  c.distributed.num_processes = 0
  c.distributed.process_id = -1
  return c


def finalize(cfg: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """Validates the values everyone relies on and locks the config (unknown keys become errors).

  `peft`, `model.overrides` and `task.options` stay open: their keys are checked by the PEFT method,
  `TransformerConfig.replace` and `data.get_task`, which know the valid names.
  """
  if cfg.wandb.mode not in WANDB_MODES:
    raise ValueError(f"wandb.mode must be one of {WANDB_MODES}, got {cfg.wandb.mode!r}")
  if cfg.batch_size <= 0:
    raise ValueError(f"batch_size must be positive, got {cfg.batch_size}")
  if cfg.total_steps < 0:  # 0: no training step; the starting model is evaluated (a baseline row)
    raise ValueError(f"total_steps must be >= 0, got {cfg.total_steps}")
  if cfg.get("epochs", 0) < 0 or cfg.get("eval", {}).get("patience", 0) < 0:
    raise ValueError(f"epochs and eval.patience must be >= 0, got {cfg.epochs} and {cfg.eval.patience}")
  skip = cfg.train.skip_nonfinite
  if isinstance(skip, bool) or not isinstance(skip, int) or skip < 0:
    raise ValueError(f"train.skip_nonfinite must be an integer >= 0, got {cfg.train.skip_nonfinite!r}")
  cfg.lock()
  for free in OPEN_SECTIONS:  # validated by peft / models / data
    node = cfg
    for part in free.split("."):
      node = node[part]
    node.unlock()
  return cfg
