"""Whether a table is a linkage key (S5, D6): identity numbers paired one to one with serial
numbers (løpenummer), and little else. Pure.

The key is what turns pseudonymous research data back into people, so it must live apart from
the data (S5). What sets it apart from a data file that merely holds identity numbers is its
shape: an identity-number column, a column of distinct short codes, each identity number with
exactly one code and each code with exactly one identity number, and at most a couple of other
columns (a date of extraction, a project code), in which case the code column must be named
like a serial number. A table with more columns is data with identifiers (S4's business), not
a key.

Rows are streamed once. Candidates are dropped as soon as a value repeats or does not look like
a code, so a data file costs little; a true key is remembered whole (one entry per row in each
of two sets), which is what proving one-to-one takes.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from agent.storage.evidence import TableVerdict, as_identity_number

#: A serial number: letters and digits with at least one digit, optionally in parts joined by
#: "-" or "_" (P000123, LNR-00042, 4711), at most 16 characters. Eleven digits in a row would
#: be an identity number's shape, so a part holds at most 10 digits.
_SERIAL = re.compile(r"(?=[^0-9]*[0-9])(?!.*[0-9]{11})[A-Za-z0-9]+(?:[-_][A-Za-z0-9]+)*")
_SERIAL_MAX = 16
#: Dates are distinct short codes too, in a small file: never a serial number.
_DATE = re.compile(r"[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}|[0-9]{1,2}-[0-9]{1,2}-[0-9]{4}")
#: Names a serial-number column goes by (løpenummer, lnr, pid, pseudonym, key...). With other
#: columns beside the pair, the serial column must be named like one: a data file of an
#: identity number, a code that happens to be distinct in a few rows and a measurement is not
#: a key, and moving it to the key zone would take it from the members who work on it.
_SERIAL_NAME = re.compile(
    r"l[oø]pe|lnr|serial|pseudo|n[oø]kkel|key|(?:^|[^a-zæøå])p?id(?:$|[^a-zæøå])",
    re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class LinkageVerdict:
    """The pair of columns that makes the table a key; counts and names, never values."""

    identity_column: str
    serial_column: str
    rows: int
    other_columns: tuple[str, ...]


def is_serial_code(value: str) -> bool:
    return (len(value) <= _SERIAL_MAX and _SERIAL.fullmatch(value) is not None
            and _DATE.fullmatch(value) is None)


def named_like_a_serial(name: str) -> bool:
    return _SERIAL_NAME.search(name) is not None


class _Distinct:
    """A column whose non-empty values have all been distinct so far."""

    __slots__ = ("index", "seen")

    def __init__(self, index: int) -> None:
        self.index = index
        self.seen: set[str] = set()

    def add(self, value: str) -> bool:
        if value in self.seen:
            return False
        self.seen.add(value)
        return True


def judge_linkage(table_header: Sequence[str], rows: Iterable[Sequence[str]],
                  verdict: TableVerdict, *, max_other_columns: int = 2) -> LinkageVerdict | None:
    """The key's columns if the table is a linkage key, else None. ``verdict`` is
    ``evidence.judge_table``'s for the same table: it says which columns hold identity
    numbers. Rows where the identity number or the serial is empty pair nothing and are
    skipped; the values that are there must still be distinct."""
    identity_names = set(verdict.identity_columns)
    if not identity_names or len(table_header) - 2 > max_other_columns:
        return None
    identities = [_Distinct(i) for i, name in enumerate(table_header) if name in identity_names]
    serials = [_Distinct(i) for i, name in enumerate(table_header) if name not in identity_names]
    pairs = {(i.index, s.index): 0 for i in identities for s in serials}
    for row in rows:
        if not identities or not serials:
            return None
        identities = [c for c in identities if _keeps_identity(c, row)]
        serials = [c for c in serials if _keeps_serial(c, row)]
        for identity in identities:
            if not _cell(row, identity.index):
                continue
            for serial in serials:
                if _cell(row, serial.index):
                    pairs[identity.index, serial.index] += 1
    return _verdict(table_header, identities, serials, pairs)


def _cell(row: Sequence[str], index: int) -> str:
    return row[index].strip() if index < len(row) else ""


def _keeps_identity(column: _Distinct, row: Sequence[str]) -> bool:
    value = _cell(row, column.index)
    if not value:
        return True
    # "010185 12345" and "01018512345" are one person: compare the digits.
    return column.add(as_identity_number(value) or value)


def _keeps_serial(column: _Distinct, row: Sequence[str]) -> bool:
    value = _cell(row, column.index)
    if not value:
        return True
    return is_serial_code(value) and column.add(value)


def _verdict(header: Sequence[str], identities: list[_Distinct], serials: list[_Distinct],
             pairs: dict[tuple[int, int], int]) -> LinkageVerdict | None:
    """The pair that pairs the most rows (the first in the header among equals); with other
    columns beside it, only a serial column named like one counts."""
    alone = len(header) == 2
    candidates = [(pairs[i.index, s.index], i.index, s.index) for i in identities for s in serials
                  if alone or named_like_a_serial(header[s.index])]
    best = max(candidates, key=lambda c: (c[0], -c[1], -c[2]), default=None)
    if best is None or best[0] == 0:
        return None
    count, identity, serial = best
    others = tuple(name for i, name in enumerate(header) if i not in (identity, serial))
    return LinkageVerdict(identity_column=header[identity], serial_column=header[serial],
                          rows=count, other_columns=others)
