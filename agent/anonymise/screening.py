"""Which columns leave the table before anonymising (L6): direct identifiers.

A column named as a direct identifier goes, and so does every column found to hold identity
numbers; a column that holds a few among other values is refused rather than guessed about,
since one number left in an anonymised file undoes the anonymisation.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import polars as pl

from agent.anonymise.columns import screen_identity_numbers
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


def columns_to_remove(
    frame: pl.DataFrame, settings: Settings, *, today: date, share: float
) -> list[Removal]:
    removals = [
        Removal(name, "named as a direct identifier (L6)") for name in settings.direct_identifiers
    ]
    named = set(settings.direct_identifiers)
    roles = _roles(settings)
    for name in frame.columns:
        column = frame[name]
        if name in named or column.dtype in _NEVER_NUMBERS or isinstance(column.dtype, pl.Datetime):
            continue
        screen = screen_identity_numbers(column, today=today)
        if screen.identity_numbers == 0:
            continue
        if screen.is_identity_column(share):
            if name in roles:
                raise InvalidRequest(
                    f"column {name!r} holds identity numbers and cannot be a {roles[name]}",
                    rule="L6",
                    hint="it is a direct identifier and is removed; name another column",
                )
            removals.append(Removal(name, "holds identity numbers (L6)"))
            continue
        raise InvalidRequest(
            f"column {name!r} holds {screen.identity_numbers:,} identity numbers among "
            f"{screen.non_empty:,} values",
            rule="L6",
            hint=f"remove them first, or drop the column with --drop {name}",
        )
    return removals
