"""Language-model text: tasks of kind "lm" whose examples are documents `{"text": str}`, from real text.

The "lm" pipeline (`pipeline._lm_dataset`) tokenizes each document (`formats.lm_document`: BOS, when the
tokenizer has one, + text + EOS), cuts it to `max_length` tokens and packs documents into full rows. Importing
this module (which `import lightft_jax.data` does) registers these tasks with `tasks.register`:

  lm_text             your files. `path=`: a .txt file (one document per blank-line-separated paragraph), a
                      directory of .txt files (one document per file), or a .jsonl file (one document per line,
                      its `text_field`, default "text"); `unit="paragraph" | "file" | "line"` overrides how .txt
                      files split. One path is the whole corpus: `validation=` / `test=` (fractions, default
                      0.05 each) of its documents are held out (a fixed shuffle); or `path={split: path}`.
  rotten_tomatoes_lm  the Rotten Tomatoes review snippets (`rotten_tomatoes`, prepared on first use, then
                      offline) as text: one snippet per document, its train / validation / test split (by movie).
  wikitext103         WikiText-103 raw (Merity et al. 2017; wikitext2: the small one): one Wikipedia article
                      per document (an article starts at a ` = Title = ` line). The zip is downloaded once from
                      https://wikitext.smerity.com into `<data_dir>/downloads/wikitext/` (default data_dir
                      ~/tensorflow_datasets) unless it is there; `source_path=` a local copy (the zip, or a
                      directory with wiki.train.raw, wiki.valid.raw, wiki.test.raw).
  tfds_lm             any TFDS dataset with a text feature: `builder=` ("lm1b", "pg19", "c4/en", "imdb_reviews",
                      ...), `text_field=` (default "text"), `split_map=` ({our split: TFDS split}), `splits=`,
                      `prepare=` (run TFDS's download_and_prepare first; otherwise it must be prepared).

Every task takes `max_chars=` (0: off): a document longer than that is split into consecutive pieces of at
most `max_chars` characters at paragraph, then line, sentence and word boundaries, so that a long document is
trained on whole rather than cut at `max_length` tokens (about 3 characters per token of English keeps a
piece within one row: max_chars = 3 * max_length).
"""

from __future__ import annotations

import functools
import re
import urllib.request
import zipfile
from pathlib import Path
from typing import Sequence

import numpy as np

from lightft_jax.data import sources, tasks

LM_METRICS = ("perplexity",)
SPLITS = ("train", "validation", "test")
UNITS = ("paragraph", "file", "line")
WIKITEXT_URL = "https://wikitext.smerity.com/{name}-raw-v1.zip"  # name: wikitext-103 | wikitext-2
WIKITEXT_FILES = {"train": "wiki.train.raw", "validation": "wiki.valid.raw", "test": "wiki.test.raw"}
_SEPARATORS = ("\n\n", "\n", ". ", " ")
_ARTICLE_TITLE = re.compile(r"^ = [^=].* = $")  # " = Title = "; sections are " = = Section = = "


# ------------------------------------------------------------------------------------------- documents

def split_long(text: str, max_chars: int, separators: Sequence[str] = _SEPARATORS) -> list[str]:
  """`text` as consecutive pieces of at most `max_chars` characters (0: `[text]`), cut at the first separator
  that gives short enough parts (paragraphs, then lines, sentences, words; a hard cut as a last resort);
  neighbouring parts are merged while they fit. Pieces are stripped; empty ones dropped."""
  text = text.strip()
  if not text:
    return []
  if max_chars <= 0 or len(text) <= max_chars:
    return [text]
  sep = next((s for s in separators if s in text), None)
  if sep is None:
    return [text[i:i + max_chars].strip() for i in range(0, len(text), max_chars) if text[i:i + max_chars].strip()]
  rest = separators[separators.index(sep) + 1:]
  parts = text.split(sep)
  parts = [p + sep if i < len(parts) - 1 and sep.strip() else p for i, p in enumerate(parts)]  # keep ". "
  out, current = [], ""
  joiner = "" if sep.strip() else sep
  for part in parts:
    candidate = current + joiner + part if current else part
    if len(candidate.strip()) <= max_chars:
      current = candidate
      continue
    if current.strip():
      out.append(current.strip())
    if len(part.strip()) <= max_chars:
      current = part
    else:
      out.extend(split_long(part, max_chars, rest))
      current = ""
  if current.strip():
    out.append(current.strip())
  return out


def as_documents(texts, max_chars: int = 0) -> list[dict]:
  """Strings -> `{"text": ...}` documents (empty ones dropped; long ones split by `split_long`)."""
  return [{"text": piece} for t in texts for piece in split_long(str(t), max_chars)]


def txt_documents(path: str | Path, unit: str = "paragraph") -> list[str]:
  """Documents of a .txt file: blank-line-separated paragraphs (`unit="paragraph"`), the whole file ("file")
  or non-empty lines ("line"). Paragraph lines are kept as written (joined by newlines)."""
  if unit not in UNITS:
    raise ValueError(f"unit must be one of {UNITS}, got {unit!r}")
  text = Path(path).read_text(encoding="utf-8").replace("\r\n", "\n")
  if unit == "file":
    return [text.strip()] if text.strip() else []
  if unit == "line":
    return [line.strip() for line in text.split("\n") if line.strip()]
  return [p.strip() for p in re.split(r"\n[ \t]*\n", text) if p.strip()]


def read_documents(path: str | Path, *, unit: str | None = None, text_field: str = "text") -> list[str]:
  """Documents of a .txt file, a directory of .txt files (sorted by name; default unit "file"), or a .jsonl
  file (`text_field` of each line)."""
  path = Path(path).expanduser()
  if not path.exists():
    raise FileNotFoundError(f"no text file or directory at {path}")
  if path.is_dir():
    files = sorted(path.glob("*.txt"))
    if not files:
      raise FileNotFoundError(f"directory {path} holds no .txt files")
    return [d for f in files for d in txt_documents(f, unit or "file")]
  if path.suffix == ".txt":
    return txt_documents(path, unit or "paragraph")
  if path.suffix in (".jsonl", ".json"):
    rows = sources.read_records(path)
    for i, r in enumerate(rows):
      sources.check_fields(r, (text_field,), f"{path} row {i}")
    return [str(r[text_field]) for r in rows]
  raise ValueError(f"unsupported text file {path.name!r}: use .txt, a directory of .txt files, or .jsonl")


def holdout_splits(n: int, validation: float, test: float, seed: int = 0) -> dict[str, np.ndarray]:
  """Document indices per split: a fixed shuffle, the first ceil(validation * n) to validation, the next
  ceil(test * n) to test (a fraction > 0 holds out at least one document), the rest to train (sorted, so
  every split keeps the corpus order)."""
  if not (0 <= validation < 1 and 0 <= test < 1 and validation + test < 1):
    raise ValueError(f"validation and test are fractions with a sum below 1, got {validation} and {test}")
  order = np.random.default_rng(seed).permutation(n)
  n_val, n_test = int(np.ceil(validation * n)), int(np.ceil(test * n))
  if n - n_val - n_test < 1:
    raise ValueError(f"{n} documents are too few for validation={validation} and test={test}")
  return {"validation": np.sort(order[:n_val]), "test": np.sort(order[n_val:n_val + n_test]),
          "train": np.sort(order[n_val + n_test:])}


def _lm_task(name: str, open_split, splits=SPLITS) -> tasks.Task:
  return tasks.Task(name, "lm", ("text",), None, LM_METRICS, open_split, splits=tuple(splits))


# --------------------------------------------------------------------------------------------- lm_text

def lm_text_task(path, *, unit: str | None = None, text_field: str = "text", validation: float = 0.05,
                 test: float = 0.05, max_chars: int = 0, name: str = "lm_text", seed: int = 0) -> tasks.Task:
  """Documents from your files (see the module docstring): `path` one file / directory (validation and test
  held out) or {split: path}."""
  if isinstance(path, dict):
    paths = {str(k): v for k, v in path.items()}
    cache: dict[str, list[dict]] = {}

    def open_split(split, data_dir=None):
      if split not in cache:
        cache[split] = as_documents(read_documents(paths[split], unit=unit, text_field=text_field), max_chars)
      return cache[split]

    return _lm_task(name, open_split, splits=tuple(paths))

  docs = read_documents(path, unit=unit, text_field=text_field)
  parts = holdout_splits(len(docs), validation, test, seed)
  by_split = {s: as_documents([docs[i] for i in idx], max_chars) for s, idx in parts.items()}
  splits = tuple(s for s in SPLITS if s == "train" or len(parts[s]))
  return _lm_task(name, lambda split, data_dir=None: by_split[split], splits=splits)


# ------------------------------------------------------------------------------------ rotten_tomatoes_lm

def rotten_tomatoes_lm_task(data_dir: str | None = None, max_chars: int = 0, **options) -> tasks.Task:
  """The Rotten Tomatoes snippets (task `rotten_tomatoes`, its options passed on) as LM documents."""
  reviews = tasks.get_task("rotten_tomatoes", data_dir=data_dir, **options)

  @functools.lru_cache(maxsize=None)
  def docs(split, dd):
    src = reviews.open(split, dd)
    return tuple(as_documents((src[i]["text"] for i in range(len(src))), max_chars))

  return _lm_task(reviews.name + "_lm", lambda split, dd=None: docs(split, dd or data_dir), reviews.splits)


# ------------------------------------------------------------------------------------------- wikitext

def wikitext_articles(text: str) -> list[str]:
  """WikiText raw text -> articles: each starts at a top-level heading line ` = Title = ` and runs to the next;
  lines are kept as written (the raw files' " @-@ " and spaced punctuation included), outer whitespace stripped."""
  articles, current = [], []
  for line in text.split("\n"):
    if _ARTICLE_TITLE.match(line) and any(l.strip() for l in current):
      articles.append("\n".join(current).strip())
      current = []
    current.append(line)
  if any(l.strip() for l in current):
    articles.append("\n".join(current).strip())
  return articles


def fetch_wikitext(name: str, data_dir: str | None = None, timeout: float = 600.0) -> Path:
  """`<data_dir>/downloads/wikitext/<name>-raw-v1.zip`, downloaded from WIKITEXT_URL unless it is there."""
  target = Path(sources.default_data_dir(data_dir)) / "downloads" / "wikitext" / f"{name}-raw-v1.zip"
  if target.exists():
    return target
  url = WIKITEXT_URL.format(name=name)
  target.parent.mkdir(parents=True, exist_ok=True)
  partial = target.with_suffix(".zip.part")
  try:
    with urllib.request.urlopen(url, timeout=timeout) as resp, partial.open("wb") as f:
      while chunk := resp.read(1 << 20):
        f.write(chunk)
  except OSError as e:
    partial.unlink(missing_ok=True)
    raise sources.DatasetNotPreparedError(
        f"cannot download {url} ({e}). Download it once where the internet is reachable: `curl -L -o {target} "
        f"{url}`, or pass source_path= (the zip, or a directory with {', '.join(WIKITEXT_FILES.values())})") from None
  partial.rename(target)
  return target


@functools.lru_cache(maxsize=6)
def _wikitext_split(source: str, split: str, max_chars: int) -> tuple[dict, ...]:
  """The documents of one split, read once per process (the loaders, the epoch count and the samples share them)."""
  path, member = Path(source), WIKITEXT_FILES[split]
  if path.is_dir():
    text = (path / member).read_text(encoding="utf-8")
  else:
    with zipfile.ZipFile(path) as z:
      names = [n for n in z.namelist() if n.endswith("/" + member) or n == member]
      if not names:
        raise FileNotFoundError(f"{path} has no {member}")
      text = z.read(names[0]).decode("utf-8")
  return tuple(as_documents(wikitext_articles(text), max_chars))


def wikitext_task(size: str = "103"):
  name = f"wikitext-{size}"

  def make(data_dir: str | None = None, source_path: str | None = None, max_chars: int = 0,
           download_timeout: float = 600.0) -> tasks.Task:
    """WikiText raw, one article per document (see the module docstring)."""

    def open_split(split, dd=None):
      source = source_path or fetch_wikitext(name, dd or data_dir, download_timeout)
      return _wikitext_split(str(Path(source).expanduser()), split, max_chars)

    return _lm_task(f"wikitext{size}", open_split)

  return make


# -------------------------------------------------------------------------------------------- tfds_lm

def tfds_lm_task(builder: str, text_field: str = "text", split_map: dict | None = None,
                 splits: Sequence[str] = SPLITS, prepare: bool = False, max_chars: int = 0,
                 data_dir: str | None = None, name: str | None = None) -> tasks.Task:
  """Any TFDS dataset with a text feature as LM documents (records without text are empty documents, which
  the pipeline skips; with `max_chars`, a long record becomes several documents, read into memory)."""
  split_map = dict(split_map or {})

  def text_of(record):
    record = sources.to_python(record)
    if text_field not in record:
      raise ValueError(f"TFDS {builder!r} records have no text feature {text_field!r}; features: {sorted(record)}")
    return {"text": str(record[text_field])}

  def open_split(split, dd=None):
    raw = sources.open_tfds(builder, split_map.get(split, split), dd or data_dir, prepare=prepare)
    src = sources.MappedSource(raw, text_of)
    if max_chars > 0:
      return as_documents((src[i]["text"] for i in range(len(src))), max_chars)
    return src

  return _lm_task(name or builder.replace("/", "_"), open_split, splits)


tasks.register("lm_text", lm_text_task)
tasks.register("rotten_tomatoes_lm", rotten_tomatoes_lm_task)
tasks.register("wikitext103", wikitext_task("103"))
tasks.register("wikitext2", wikitext_task("2"))
tasks.register("tfds_lm", tfds_lm_task)
