"""Columns as the anonymisation sees them: text for the hierarchies, codes for the search, and
the screen for identity numbers that must not survive (L6).

Why text: hierarchies (built-in or ARX files) are written in text, and a Stata float 34.0, a
Parquet integer 34 and a CSV "34" are the same age. Why codes: the lattice search counts classes
hundreds of times, on integers.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import numpy as np
import numpy.typing as npt
import polars as pl

from agent.storage.evidence import as_identity_number, scan_text
from agent.storage.identity_numbers import is_identity_number

#: A cheap first pass over every cell: five or six digits, an optional space, dot or dash, and
#: five more, anywhere in the text. It finds every spelling the storage rules validate
#: (agent.storage.evidence), and more; what it finds is validated there.
_CANDIDATE = r"\d{5,6}[ .\-]?\d{5}"


def as_text(column: pl.Series) -> pl.Series:
    """The column's values as the text a hierarchy names them by; missing stays missing."""
    dtype = column.dtype
    if dtype == pl.Utf8:
        return column
    if dtype == pl.Date:
        return column.dt.strftime("%Y-%m-%d")
    if isinstance(dtype, pl.Datetime):
        # Sub-seconds kept, and zoned times in UTC: two instants must never share a text (the
        # repeated hour of the autumn clock change, milliseconds of a Stata %tc).
        if dtype.time_zone is not None:
            column = column.dt.convert_time_zone("UTC").dt.replace_time_zone(None)
        whole = column.dt.strftime("%Y-%m-%d %H:%M:%S")
        fraction = column.dt.strftime("%.f").str.strip_chars_end("0").str.strip_chars_end(".")
        return (whole + fraction).alias(column.name)
    if dtype.is_float():
        # Whole numbers read as integers ("34", not "34.0"), but only where a float holds
        # every integer exactly: beyond 2**53 two numbers could share a text.
        whole = (
            column.is_finite() & (column == column.round()) & (column.abs() < 2.0**53)
        )
        return pl.select(
            pl.when(whole)
            .then(column.cast(pl.Int64, strict=False).cast(pl.Utf8))
            .otherwise(column.cast(pl.Utf8))
        ).to_series().alias(column.name)
    return column.cast(pl.Utf8)


@dataclass(frozen=True)
class Factorised:
    """A column as integer codes: ``codes[row]`` indexes ``values`` (first-seen order)."""

    codes: npt.NDArray[np.int64]
    values: tuple[str | None, ...]


def factorise(text: pl.Series) -> Factorised:
    frame = text.alias("value").to_frame()
    distinct = frame.unique(maintain_order=True).with_row_index("code")
    codes = frame.join(
        distinct, on="value", how="left", nulls_equal=True, maintain_order="left"
    )["code"]
    return Factorised(
        codes=codes.cast(pl.Int64).to_numpy(),
        values=tuple(distinct["value"].to_list()),
    )


@dataclass(frozen=True)
class IdentityScreen:
    """A column's cells against identity numbers: how many are non-empty, how many are one
    identity number and nothing else, and how many numbers stand anywhere in its text."""

    column: str
    non_empty: int
    identity_numbers: int
    #: Every valid number in the column's text, free text included.
    anywhere: int = 0

    def is_identity_column(self, share: float) -> bool:
        return self.non_empty > 0 and self.identity_numbers >= share * self.non_empty


def screen_texts(name: str, text: pl.Series, *, today: date) -> IdentityScreen:
    """Every cell, not a sample: one number left in an anonymised file undoes the
    anonymisation. Cells without a candidate (the storage rules' spellings, anywhere in the
    text) are passed by a vectorised match; the rest are judged by the storage rules' own
    validator and free-text scanner, once per distinct cell."""
    non_empty = int(text.drop_nulls().str.strip_chars().str.len_chars().gt(0).sum())
    candidates = text.filter(text.str.contains(_CANDIDATE).fill_null(False))
    exact = anywhere = 0
    for value, count in candidates.value_counts().iter_rows():
        cell = str(value)
        digits = as_identity_number(cell)
        if digits is not None and is_identity_number(digits, today):
            exact += int(count)
            anywhere += int(count)
        else:
            anywhere += scan_text([cell], today=today).hits * int(count)
    return IdentityScreen(name, non_empty, exact, anywhere)


def screen_identity_numbers(column: pl.Series, *, today: date) -> IdentityScreen:
    return screen_texts(column.name, as_text(column), today=today)
