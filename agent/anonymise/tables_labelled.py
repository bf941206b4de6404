"""Stata (.dta) and SPSS (.sav, .zsav) for anonymisation: the values and the dictionary.

Why the dictionary matters: a statistician reads "Kvinne", not 2; "Fødselsdato", not fdato.
An anonymised file without its variable labels, value labels and formats is a file someone has
to document again by hand, so each is carried over wherever it still describes the column.
pyreadstat reads and writes polars frames directly (through narwhals), so pandas is not needed.

What the formats cannot keep: Stata's byte/int/float storage comes back as long/double (pyreadstat
writes every integer as a 32-bit long and every float as a double; the values are the same);
Stata notes and characteristics and SPSS multiple-response sets are not written; value-label
sets are named after their column. User-missing values (SPSS missing ranges, Stata's .a-.z)
are read as null, like every missing value; SPSS's missing-range definitions are written back.
Stata has no missing text, only "", so an empty text reads as null in both formats.

What is not carried over: the labels of values no row holds any more, the dictionary of a
generalised column beyond its variable label, and identity numbers in any text (masked).
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from dataclasses import replace
from typing import Any, TypeVar

import polars as pl
import pyreadstat

from agent.anonymise.tables_meta import (
    FileIdentity,
    LabelledMeta,
    frozen_mapping,
    masked_text,
    masked_texts,
    not_readable,
)

#: Stata's file format release -> the ``version`` pyreadstat.write_dta takes to write it.
_STATA_VERSIONS = {119: 15, 118: 14, 117: 13, 115: 12, 114: 11, 113: 8}
_RELEASE = re.compile(rb"<stata_dta><header><release>(\d{3})</release>")
_FORMAT_NAMES = {"stata": "Stata", "spss": "SPSS"}
_Entry = TypeVar("_Entry")
#: The widest display format Stata has for text.
_STATA_WIDEST = 2045


def _stata_version(sample: bytes) -> int:
    """The input's release, so the output opens in the same Stata versions as the input."""
    found = _RELEASE.match(sample)
    release = int(found.group(1)) if found else sample[0]
    return _STATA_VERSIONS.get(release, 14)


def _spss_compression(sample: bytes) -> str:
    if sample.startswith(b"$FL3"):
        return "zsav"
    # The header's layout code (2 or 3) tells the byte order; the compression code follows.
    little = int.from_bytes(sample[64:68], "little") in (2, 3)
    code = int.from_bytes(sample[72:76], "little" if little else "big")
    return "rows" if code == 1 else "none"


def _missing_ranges(raw: Mapping[str, list[Any]]) -> dict[str, tuple[Any, ...]]:
    """pyreadstat's ranges as (low, high) pairs: frozen here, rebuilt for the writer."""
    return {column: tuple((r["lo"], r["hi"]) if isinstance(r, Mapping) else (r, r)
                          for r in ranges) for column, ranges in raw.items()}


def _dtype_of_empty(storage: str, form: str) -> pl.DataType:
    """The type a column would have had with rows: pyreadstat types a table without rows as
    Null, which no writer takes."""
    if storage == "string":
        return pl.Utf8()
    if form.startswith(("%tc", "%tC", "DATETIME")):
        return pl.Datetime("us")
    if form.startswith(("%td", "DATE", "ADATE", "EDATE", "SDATE")):
        return pl.Date()
    return pl.Int64() if storage.startswith("int") else pl.Float64()


def _typed(frame: pl.DataFrame, storage: Mapping[str, str],
           formats: Mapping[str, str]) -> pl.DataFrame:
    untyped = [name for name, dtype in frame.schema.items() if dtype == pl.Null]
    return frame.with_columns(
        pl.col(name).cast(_dtype_of_empty(storage.get(name, ""), formats.get(name, "")))
        for name in untyped)


def _empty_text_as_null(frame: pl.DataFrame) -> pl.DataFrame:
    texts = [name for name, dtype in frame.schema.items() if dtype == pl.Utf8]
    return frame.with_columns(pl.when(pl.col(name) != "").then(pl.col(name)).alias(name)
                              for name in texts)


def read_labelled(reopen: str, name: str, format_name: str, sample: bytes,
                  identity: FileIdentity) -> tuple[pl.DataFrame, LabelledMeta]:
    """``format_name`` is "stata" or "spss"; ``reopen`` a path to the already opened input."""
    try:
        if format_name == "stata":
            frame, meta = pyreadstat.read_dta(reopen, output_format="polars")
            ranges: dict[str, tuple[Any, ...]] = {}
        else:
            frame, meta = pyreadstat.read_sav(reopen, output_format="polars")
            # User-missing values come out as null; their definitions are only reported when
            # they are kept, so the dictionary is read once more, without the data.
            _, declared = pyreadstat.read_sav(reopen, metadataonly=True, user_missing=True,
                                              output_format="polars")
            ranges = _missing_ranges(declared.missing_ranges)
    except Exception:  # any library failure on a damaged file is one answer
        raise not_readable(name, f"a damaged or truncated {_FORMAT_NAMES[format_name]} file"
                           ) from None
    if not isinstance(frame, pl.DataFrame):
        raise not_readable(name, "the reader returned no table")
    labels = {column: label for column, label in zip(meta.column_names, meta.column_labels,
                                                     strict=True) if label}
    spss = format_name == "spss"
    dictionary = LabelledMeta(
        identity=identity,
        file_label=meta.file_label or "",
        column_labels=frozen_mapping(labels),
        value_labels=frozen_mapping({column: frozen_mapping(values) for column, values
                                     in meta.variable_value_labels.items()}),
        formats=frozen_mapping({column: form for column, form
                                in meta.original_variable_types.items() if form}),
        missing_ranges=frozen_mapping(ranges),
        measures=frozen_mapping({column: measure for column, measure
                                 in meta.variable_measure.items()
                                 if spss and measure != "unknown"}),
        display_widths=frozen_mapping({column: width for column, width
                                       in meta.variable_display_width.items()
                                       if spss and width > 0}),
        notes=tuple(meta.notes) if spss else (),
        stata_version=_stata_version(sample) if not spss else 14,
        spss_compression=_spss_compression(sample) if spss else "none",
    )
    frame = _typed(frame, meta.readstat_variable_types, dictionary.formats)
    return _empty_text_as_null(frame), dictionary


def _ranges_for_writer(pairs: tuple[Any, ...]) -> list[Any]:
    return [low if low == high else {"lo": low, "hi": high} for low, high in pairs]


def _occurring_labels(frame: pl.DataFrame, column: str,
                      labels: Mapping[Any, str]) -> dict[Any, str]:
    """The labels of values the output column still holds. A label of a value no row has any
    more (a suppressed municipality, a tagged missing value read as null) would tell the
    reader of the output what was taken out."""
    numeric = frame.schema[column].is_numeric()
    occurring = set(frame.get_column(column).drop_nulls().unique().to_list())
    return {value: label for value, label in labels.items()
            if isinstance(value, str) != numeric and value in occurring}


def output_dictionary(frame: pl.DataFrame, source_schema: Mapping[str, pl.DataType],
                      meta: LabelledMeta, generalised: Collection[str]) -> tuple[LabelledMeta, int]:
    """The dictionary the output gets, and how many of its texts had an identity number masked.

    A column keeps its whole entry only while it holds what it held: the same type and not
    generalised. A generalised column ("0301" now "03") or one whose type changed keeps its
    variable label only; its value labels, missing ranges and formats describe values it no
    longer holds. Every text written (file label, variable labels, value labels, notes) is
    masked (L6).
    """
    kept = [column for column in frame.columns if column not in generalised
            and column in source_schema and frame.schema[column] == source_schema[column]]
    file_label, masked = masked_text(meta.file_label)
    column_labels, count = masked_texts({c: meta.column_labels[c] for c in frame.columns
                                         if c in meta.column_labels})
    masked += count
    value_labels: dict[str, Mapping[Any, str]] = {}
    for column in kept:
        labels = _occurring_labels(frame, column, meta.value_labels.get(column, {}))
        if labels:
            value_labels[column], count = masked_texts(labels)
            masked += count
    notes = [masked_text(note) for note in meta.notes]
    masked += sum(count for _, count in notes)

    def of_kept(entries: Mapping[str, _Entry]) -> Mapping[str, _Entry]:
        return frozen_mapping({c: entries[c] for c in kept if c in entries})

    dictionary = replace(
        meta, file_label=file_label, column_labels=frozen_mapping(column_labels),
        value_labels=frozen_mapping(value_labels), notes=tuple(note for note, _ in notes),
        formats=of_kept(meta.formats), missing_ranges=of_kept(meta.missing_ranges),
        measures=of_kept(meta.measures), display_widths=of_kept(meta.display_widths))
    return dictionary, masked


def _stata_text_formats(frame: pl.DataFrame, formats: dict[str, str]) -> dict[str, str]:
    """A text column without a kept format gets one as wide as its longest value, as Stata
    gives a new str# variable; the writer's own default is %-9s whatever the values."""
    texts = [name for name, dtype in frame.schema.items()
             if dtype == pl.Utf8 and name not in formats]
    if not texts:
        return formats
    widths = frame.select(pl.col(texts).str.len_chars().max().fill_null(1)
                          .clip(1, _STATA_WIDEST)).row(0, named=True)
    return formats | {name: f"%{widths[name]}s" for name in texts}


def write_labelled(frame: pl.DataFrame, meta: LabelledMeta, format_name: str,
                   target: str) -> None:
    """Writes ``frame`` with the dictionary :func:`output_dictionary` made for it."""
    common: dict[str, Any] = {
        "file_label": meta.file_label,
        "column_labels": dict(meta.column_labels) or None,
        "variable_value_labels": {c: dict(v) for c, v in meta.value_labels.items()} or None,
    }
    formats = dict(meta.formats)
    if format_name == "stata":
        pyreadstat.write_dta(frame, target, version=meta.stata_version,
                             variable_format=_stata_text_formats(frame, formats) or None,
                             **common)
        return
    # SPSS ties a text column's format (A8) to its width, which the writer derives from the
    # values written, so the writer decides it for every text column.
    formats = {c: f for c, f in formats.items() if frame.schema[c] != pl.Utf8}
    pyreadstat.write_sav(frame, target,
                         compress=meta.spss_compression == "zsav",
                         row_compress=meta.spss_compression == "rows",
                         note=list(meta.notes) or None,
                         missing_ranges={c: _ranges_for_writer(r)
                                         for c, r in meta.missing_ranges.items()} or None,
                         variable_display_width=dict(meta.display_widths) or None,
                         variable_measure=dict(meta.measures) or None,
                         variable_format=formats or None,
                         **common)
