"""README tables that a table script writes between `<!-- NAME: begin -->` and `<!-- NAME: end -->` (NAME
defaults to "table"), and that tests/test_claims.py reads back to compare with the committed summaries."""

from __future__ import annotations

from pathlib import Path


def markers(name: str = "table") -> tuple[str, str]:
  return f"<!-- {name}: begin -->", f"<!-- {name}: end -->"


def read(text: str, name: str = "table") -> str:
  """The text between the NAME markers, stripped."""
  begin, end = markers(name)
  return text.split(begin)[1].split(end)[0].strip()


def replace(text: str, body: str, name: str = "table") -> str:
  """`text` with `body` between the NAME markers (which must occur once)."""
  begin, end = markers(name)
  head, rest = text.split(begin)
  return head + begin + "\n" + body + "\n" + end + rest.split(end, 1)[1]


def write(path: Path, body: str, name: str = "table") -> None:
  path.write_text(replace(path.read_text(), body, name))
