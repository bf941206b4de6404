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

from agent.storage.evidence import as_identity_number
from agent.storage.identity_numbers import is_identity_number

#: The spellings of one number the storage rules recognise (agent.storage.evidence): 11 digits,
#: or 10 with the leading zero lost, with an optional space, dot or dash after the birth date.
_CANDIDATE = r"^\s*\d{5,6}[ .\-]?\d{5}\s*$"


def as_text(column: pl.Series) -> pl.Series:
    """The column's values as the text a hierarchy names them by; missing stays missing."""
    dtype = column.dtype
    if dtype == pl.Utf8:
        return column
    if dtype == pl.Date:
        return column.dt.strftime("%Y-%m-%d")
    if isinstance(dtype, pl.Datetime):
        return column.dt.strftime("%Y-%m-%d %H:%M:%S")
    if dtype.is_float():
        whole = column.is_finite() & (column == column.round())
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
    """How many non-empty values a column holds and how many are valid identity numbers."""

    column: str
    non_empty: int
    identity_numbers: int

    def is_identity_column(self, share: float) -> bool:
        return self.non_empty > 0 and self.identity_numbers >= share * self.non_empty


def screen_identity_numbers(column: pl.Series, *, today: date) -> IdentityScreen:
    """Counts every valid identity number in the column (not a sample: one left behind in an
    anonymised file undoes the anonymisation). Only eleven-digit values are validated, once
    per distinct value; ten digits count as a number whose leading zero was lost, as happens
    when it is stored as an integer."""
    text = as_text(column)
    non_empty = int(text.drop_nulls().str.strip_chars().str.len_chars().gt(0).sum())
    candidates = text.filter(text.str.contains(_CANDIDATE).fill_null(False))
    if candidates.is_empty():
        return IdentityScreen(column.name, non_empty, 0)
    counted = candidates.value_counts()
    valid = 0
    for value, count in counted.iter_rows():
        digits = as_identity_number(str(value))
        if digits is not None and is_identity_number(digits, today):
            valid += int(count)
    return IdentityScreen(column.name, non_empty, valid)
