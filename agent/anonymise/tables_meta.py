"""What writing a table back needs to know about the file it came from.

Why a room of its own: the anonymised table must come out as the input went in (the same
delimiter and encoding, the same Parquet metadata, the same Stata/SPSS labels and formats), and
each format's reader records that here for its writer. The values are frozen: a reader's
findings travel with the frame to the writer unchanged, whatever happens to the frame between.

What is carried over is also what can leak: a file label, a variable label or a value label can
hold an identity number as easily as a cell can (a Stata ``encode fnr`` moves every number into
the labels), so the texts written back pass through the audit trail's masking first (L6).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal, TypeVar

from agent.audit.redact import redact_identity_numbers
from agent.errors import InvalidRequest

TableFormat = Literal["csv", "parquet", "stata", "spss"]

#: (st_dev, st_ino) of the input as read: the output must never be the input under any name.
FileIdentity = tuple[int, int]

_EMPTY: Mapping[str, Any] = MappingProxyType({})
_Key = TypeVar("_Key")
_Value = TypeVar("_Value")


def frozen_mapping(values: Mapping[_Key, _Value]) -> Mapping[_Key, _Value]:
    """A read-only copy: a frozen meta value must not change under its reader's feet."""
    return MappingProxyType(dict(values))


@dataclass(frozen=True, slots=True)
class DelimitedMeta:
    """A CSV/TSV file's layout. ``encoding`` is a Python codec name ("utf-8", "utf-8-sig" when
    the file starts with a byte-order mark, "latin-1", "utf-16")."""

    identity: FileIdentity
    delimiter: str
    encoding: str
    line_terminator: str


@dataclass(frozen=True, slots=True)
class ParquetMeta:
    """A Parquet file's schema as pyarrow saw it (field types, nullability and field
    metadata), its key-value metadata and its compression codec."""

    identity: FileIdentity
    #: Column name -> the ``pyarrow.Field`` as read.
    fields: Mapping[str, Any]
    schema_metadata: Mapping[bytes, bytes]
    compression: str


@dataclass(frozen=True, slots=True)
class LabelledMeta:
    """A Stata or SPSS file's dictionary: what a statistician sees besides the values.

    ``formats`` are the display formats ("%td", "%8.0g", "F8.2", "DATE11"); ``value_labels``
    map each labelled column's codes to their labels; ``missing_ranges`` (SPSS) are the
    user-missing definitions, whose values are read as null.
    """

    identity: FileIdentity
    file_label: str = ""
    column_labels: Mapping[str, str] = field(default_factory=lambda: _EMPTY)
    value_labels: Mapping[str, Mapping[Any, str]] = field(default_factory=lambda: _EMPTY)
    formats: Mapping[str, str] = field(default_factory=lambda: _EMPTY)
    missing_ranges: Mapping[str, tuple[Any, ...]] = field(default_factory=lambda: _EMPTY)
    measures: Mapping[str, str] = field(default_factory=lambda: _EMPTY)
    display_widths: Mapping[str, int] = field(default_factory=lambda: _EMPTY)
    notes: tuple[str, ...] = ()
    #: Stata: the version argument of ``pyreadstat.write_dta`` that gives the input's release.
    stata_version: int = 14
    #: SPSS: "zsav" (zlib, .zsav), "rows" (bytecode) or "none".
    spss_compression: str = "none"


TableMeta = DelimitedMeta | ParquetMeta | LabelledMeta


def not_readable(path: str, reason: str) -> InvalidRequest:
    """The one line every unreadable input gives: which file, what is wrong, what to do."""
    return InvalidRequest(
        f"{path}: not a CSV, Parquet, Stata or SPSS file Vokter can read ({reason})",
        hint="check the file, or export it again as .csv, .parquet, .dta or .sav")


def value_label_texts(meta: TableMeta) -> Mapping[str, tuple[str, ...]]:
    """Column -> the texts of its value labels (empty for CSV and Parquet). Why: after a Stata
    ``encode fnr`` the column holds 1, 2, 3 and the identity numbers are its labels; screening
    the values alone would keep such a column, screening these texts finds it."""
    if not isinstance(meta, LabelledMeta):
        return _EMPTY
    return frozen_mapping({column: tuple(labels.values())
                           for column, labels in meta.value_labels.items()})


def masked_text(text: str) -> tuple[str, int]:
    """``text`` with every identity number masked, and 1 if that changed it, else 0: the
    writer counts the metadata strings it masked so the report can say so."""
    safe = redact_identity_numbers(text)
    return safe, int(safe != text)


def masked_texts(texts: Mapping[_Key, str]) -> tuple[dict[_Key, str], int]:
    """Every text of a mapping masked (its keys left alone), and how many were changed."""
    pairs = {key: masked_text(text) for key, text in texts.items()}
    return {key: safe for key, (safe, _) in pairs.items()}, sum(n for _, n in pairs.values())


def masked_bytes(values: Mapping[bytes, bytes]) -> tuple[dict[bytes, bytes], int]:
    """Parquet metadata values masked like any text. A value that is not UTF-8 is read as
    Latin-1, which every byte string is: the digits of a number are the same bytes in both, so
    no value keeps one, whatever its encoding."""
    safe: dict[bytes, bytes] = {}
    count = 0
    for key, value in values.items():
        try:
            encoding, text = "utf-8", value.decode("utf-8")
        except UnicodeDecodeError:
            encoding, text = "latin-1", value.decode("latin-1")
        masked, changed = masked_text(text)
        safe[key] = masked.encode(encoding) if changed else value
        count += changed
    return safe, count
