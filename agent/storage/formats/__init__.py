"""The files a project stores, as tables and text the storage rules can judge.

``read_content`` turns an open file into what it holds: tables (CSV/TSV, JSON arrays and
lines, Parquet, Stata, SPSS, each Excel sheet) and text. Rows are read lazily and afresh on
each call, in bounded memory. The format comes from the file's first bytes; the extension only
hints (is a .txt a table? is it JSON Lines?).

A binary file of no format known here is returned as ``[]``: nothing to judge as content. The
caller scans its raw bytes if it wants to; so it does when a file claims a format and breaks
it, which raises ``UnreadableFile``.
"""

from __future__ import annotations

from agent.storage.formats import columnar, delimited, jsondoc, spreadsheet
from agent.storage.formats.model import Content, Table, Text, UnreadableFile, head
from agent.storage.formats.sniff import (
    SAMPLE_SIZE,
    Kind,
    binary_kind,
    extension,
    text_kind,
)
from agent.storage.text_encoding import encoding

_JSON_EXTENSIONS = (".json", ".jsonl", ".ndjson")

__all__ = ["Content", "Table", "Text", "UnreadableFile", "column_names", "read_content"]


def _text_kind(fd: int, name: str, sample: bytes) -> tuple[Kind, str, str | None] | None:
    """Kind, encoding and delimiter of a text file; None when it is not text."""
    chosen = encoding(sample)
    if chosen is None:
        return None
    text = sample.decode(chosen, errors="ignore")
    kind, delimiter = text_kind(text, name)
    return kind, chosen, delimiter


def read_content(fd: int, name: str) -> list[Content]:
    """What the open regular file ``fd`` holds; ``name`` is used only for its extension.
    Raises UnreadableFile when the file is damaged; never closes ``fd``."""
    sample = head(fd, SAMPLE_SIZE)
    kind = binary_kind(sample)
    if kind is not None:
        return _read_binary(fd, name, kind)
    found = _text_kind(fd, name, sample)
    if found is None:
        return []
    kind, chosen, delimiter = found
    if kind is Kind.DELIMITED and delimiter is not None:
        return [delimited.read_delimited(fd, chosen, delimiter)]
    if kind in (Kind.JSON, Kind.JSON_LINES):
        read = jsondoc.read_json if kind is Kind.JSON else jsondoc.read_json_lines
        try:
            return [read(fd, chosen)]
        except UnreadableFile:
            # Only a file named as JSON claims to be JSON; a log line starting with "[" or
            # "{" does not, and is read as the text it is.
            if extension(name) in _JSON_EXTENSIONS:
                raise
    return [delimited.read_text(fd, chosen)]


def _read_binary(fd: int, name: str, kind: Kind) -> list[Content]:
    if kind is Kind.PARQUET:
        return [columnar.read_parquet(fd)]
    if kind is Kind.STATA:
        return [columnar.read_statistical(fd, "stata")]
    if kind is Kind.SPSS:
        return [columnar.read_statistical(fd, "spss")]
    if kind is Kind.ZIP:
        if not spreadsheet.is_workbook(fd):
            return []  # a document or an archive: no table to judge
        return list(spreadsheet.read_workbook(fd))
    return []


def column_names(fd: int, name: str) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """(table name, header) of each table in the file, reading as little as each format
    allows (the first record; the schema; the first row of each sheet). Text has none."""
    sample = head(fd, SAMPLE_SIZE)
    kind = binary_kind(sample)
    if kind is not None:
        return tuple((t.name, t.header) for t in _read_binary(fd, name, kind)
                     if isinstance(t, Table))
    found = _text_kind(fd, name, sample)
    if found is None:
        return ()
    kind, chosen, delimiter = found
    if kind is Kind.DELIMITED and delimiter is not None:
        return (("", delimited.header(fd, chosen, delimiter)),)
    if kind in (Kind.JSON, Kind.JSON_LINES):
        try:
            found_header = jsondoc.records_header(fd, chosen, lines=kind is Kind.JSON_LINES)
        except UnreadableFile:
            if extension(name) in _JSON_EXTENSIONS:
                raise
            return ()  # text that only starts like JSON
        return () if found_header is None else (("", found_header),)
    return ()
