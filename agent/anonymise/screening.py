"""Which columns leave the table before anonymising (L6): direct identifiers.

A column named as a direct identifier goes, and so does every column found to hold identity
numbers; a column that holds a few among other values is refused rather than guessed about,
since one number left in an anonymised file undoes the anonymisation.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date

import polars as pl

from agent.anonymise.columns import screen_identity_numbers, screen_texts
from agent.anonymise.model import Settings
from agent.errors import InvalidRequest

#: Column types that cannot hold an identity number.
_NEVER_NUMBERS = (pl.Date, pl.Boolean)


@dataclass(frozen=True)
class Removal:
    column: str
    reason: str


def _roles(settings: Settings) -> dict[str, str]:
    roles = {name: "quasi-identifier" for name in settings.quasi_identifiers}
    roles |= {name: "sensitive column" for name in settings.sensitive}
    if settings.date_shift is not None:
        roles[settings.date_shift.serial] = "serial number for date shifting"
        roles |= {name: "date to shift" for name in settings.date_shift.columns}
    return roles


def _flat(name: str, column: pl.Series) -> None:
    """Lists, structs and bytes cannot be screened or generalised as values: refused."""
    dtype = column.dtype
    if dtype.is_nested() or dtype in (pl.Binary, pl.Object):
        raise InvalidRequest(
            f"column {name!r} holds {dtype} values, not single values",
            rule="L6",
            hint=f"anonymise a flat table, or drop the column with --drop {name}",
        )


def columns_to_remove(
    frame: pl.DataFrame,
    settings: Settings,
    *,
    today: date,
    share: float,
    value_labels: Mapping[str, Sequence[str]] | None = None,
) -> list[Removal]:
    """The columns that leave the table, and why; refuses a column that keeps a number.

    ``value_labels`` are the label texts of labelled (Stata, SPSS) columns: a column coded
    1, 2, 3 whose labels are identity numbers (what Stata's ``encode`` makes of one) is as
    identifying as the numbers themselves."""
    names = screen_texts("column names", pl.Series(frame.columns, dtype=pl.Utf8), today=today)
    if names.anywhere:
        # A table laid out with one column per person: its header is a list of persons.
        raise InvalidRequest(
            f"{names.anywhere} column name(s) hold identity numbers",
            rule="L6",
            hint="a table with a column per person cannot be anonymised here; turn it into "
            "one row per person first",
        )
    removals = [
        Removal(name, "named as a direct identifier (L6)") for name in settings.direct_identifiers
    ]
    named = set(settings.direct_identifiers)
    roles = _roles(settings)
    labels = value_labels or {}
    for name in frame.columns:
        if name in named:
            continue
        column = frame[name]
        _flat(name, column)
        if column.dtype in _NEVER_NUMBERS or isinstance(column.dtype, pl.Datetime):
            screen = None
        else:
            screen = screen_identity_numbers(column, today=today)
        by_label = screen_texts(name, pl.Series(list(labels.get(name, ())), dtype=pl.Utf8),
                                today=today)
        identifying = (screen is not None and screen.is_identity_column(share)) or (
            by_label.is_identity_column(share)
        )
        if identifying:
            if name in roles:
                raise InvalidRequest(
                    f"column {name!r} holds identity numbers and cannot be a {roles[name]}",
                    rule="L6",
                    hint="it is a direct identifier and is removed; name another column",
                )
            why = "holds identity numbers (L6)" if screen and screen.is_identity_column(share) \
                else "its value labels are identity numbers (L6)"
            removals.append(Removal(name, why))
            continue
        if screen is not None and screen.anywhere:
            raise InvalidRequest(
                f"column {name!r} holds {screen.anywhere:,} identity numbers among "
                f"{screen.non_empty:,} values",
                rule="L6",
                hint=f"remove them first, or drop the column with --drop {name}",
            )
    return removals
