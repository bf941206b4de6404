"""Which format a file is in: its first bytes decide, its extension only hints.

A file's name is what a person chose; its first bytes are what a program wrote. A Parquet
file renamed to .csv is still read as Parquet, and a CSV named .txt is still read as a table
when a delimiter parses consistently. Pure: works on the first bytes and the name.
"""

from __future__ import annotations

import csv
import enum
import io
import json
from collections import Counter

#: How much of the start of a file the recognisers look at.
SAMPLE_SIZE = 64 * 1024

_DELIMITERS = (",", ";", "\t", "|")
_TABLE_EXTENSIONS = {".csv": ",", ".tsv": "\t", ".tab": "\t"}
_MAYBE_TABLE_EXTENSIONS = {".txt", ".dat"}
_JSON_LINES_EXTENSIONS = {".jsonl", ".ndjson"}


class Kind(enum.Enum):
    PARQUET = "parquet"
    ZIP = "zip"
    STATA = "stata"
    SPSS = "spss"
    JSON = "json"
    JSON_LINES = "json lines"
    DELIMITED = "delimited"
    TEXT = "text"
    BINARY = "binary"


def extension(name: str) -> str:
    base = name.rsplit("/", 1)[-1]
    return "." + base.rsplit(".", 1)[-1].lower() if "." in base else ""


def _is_old_stata(sample: bytes) -> bool:
    """Stata 8-13 (format 113-115): version byte, byte order 1 or 2, file type 1, a zero."""
    return (len(sample) >= 4 and sample[0] in (0x71, 0x72, 0x73) and sample[1] in (1, 2)
            and sample[2] == 1 and sample[3] == 0)


def binary_kind(sample: bytes) -> Kind | None:
    """The format a file's magic bytes name, if any."""
    if sample.startswith(b"PAR1"):
        return Kind.PARQUET
    if sample.startswith(b"PK\x03\x04"):
        return Kind.ZIP
    if sample.startswith(b"<stata_dta>") or _is_old_stata(sample):
        return Kind.STATA
    if sample.startswith((b"$FL2", b"$FL3")):
        return Kind.SPSS
    return None


#: Lines of the sample the delimiter is judged on: enough to see a table's shape, few enough
#: that sniffing costs little beside judging (it runs for every file judged).
_SNIFF_LINES = 64


def _complete_lines(text: str) -> str:
    """The sample's first lines, without a last one that may be cut (unless it is the only
    one)."""
    lines = text.split("\n", _SNIFF_LINES)
    if len(lines) > _SNIFF_LINES and '"' not in text:  # a quoted cell may hold line breaks
        return "\n".join(lines[:_SNIFF_LINES])
    cut = text.rfind("\n")
    return text[:cut] if cut > 0 else text


def consistent_delimiter(text: str, preferred: str | None = None) -> str | None:
    """The delimiter that splits every record of the sample into the same number (2 or more)
    of fields, quotes respected: ``preferred`` when it does, else the one with the most."""
    sample = _complete_lines(text)
    best: tuple[int, str] | None = None
    candidates = _DELIMITERS if preferred is None else (preferred, *_DELIMITERS)
    for delimiter in candidates:
        try:
            widths = Counter(len(r) for r in csv.reader(io.StringIO(sample), delimiter=delimiter)
                             if r)
        except csv.Error:
            continue
        if len(widths) != 1:
            continue
        [width] = widths
        if width >= 2 and delimiter == preferred:
            return delimiter
        if width >= 2 and (best is None or width > best[0]):
            best = (width, delimiter)
    return None if best is None else best[1]


def _first_json_value_ends_line(text: str) -> bool:
    """Whether the first line is a whole JSON object: JSON Lines, not one pretty document."""
    line = text.split("\n", 1)[0].strip()
    try:
        value = json.loads(line)
    except ValueError:
        return False
    return isinstance(value, dict)


def text_kind(text: str, name: str) -> tuple[Kind, str | None]:
    """The kind of a text file and, for a delimited one, its delimiter."""
    ext = extension(name)
    stripped = text.lstrip()
    if ext in _JSON_LINES_EXTENSIONS:
        return Kind.JSON_LINES, None
    if ext in _TABLE_EXTENSIONS:
        default = _TABLE_EXTENSIONS[ext]
        return Kind.DELIMITED, consistent_delimiter(text, default) or default
    if stripped.startswith("["):
        return Kind.JSON, None
    if stripped.startswith("{"):
        body = stripped.split("\n", 1)
        if (len(body) == 2 and body[1].lstrip().startswith("{")
                and _first_json_value_ends_line(stripped)):
            return Kind.JSON_LINES, None
        return Kind.JSON, None
    if ext in _MAYBE_TABLE_EXTENSIONS:
        delimiter = consistent_delimiter(text)
        if delimiter is not None:
            return Kind.DELIMITED, delimiter
    return Kind.TEXT, None
