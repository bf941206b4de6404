"""Which columns of a table hold identity numbers, and how many stray ones a text holds. Pure.

A single valid-looking number proves little: 0.7 % of random 11-digit numbers and 8 % of bank
account numbers pass every check. So a column is an identity-number column only when nearly
all of its non-empty values are identity numbers (the policy's ``identifier_column_share``),
and hits in free text are reported as single hits, for a person to judge. Everything here
counts; nothing keeps or returns a number.

Values are read as people store them: ``010185 12345`` or ``010185-12345`` split 6+5, and a
number a spreadsheet turned into 10 digits by dropping its leading zero.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date

from agent.storage.identity_numbers import NumberKind, classify

#: 11 digits, optionally split 6+5, not inside a longer run of digits.
_CANDIDATE = re.compile(r"(?<![0-9])([0-9]{6})[ .\-]?([0-9]{5})(?![0-9])")
_VALUE = re.compile(r"([0-9]{5,6})[ .\-]?([0-9]{5})")
#: Characters held back at the end of each chunk of text: the longest candidate (12) and the
#: character after it, so a number cut between two chunks is found whole.
_CARRY = 13


def as_identity_number(value: str) -> str | None:
    """The 11 digits a cell holds if it is written as one number, else None. A 10-digit
    number is taken as one whose leading zero was lost (days 01-09)."""
    value = value.strip()
    if not 10 <= len(value) <= 12:  # the shortest and longest spelling of a number
        return None
    match = _VALUE.fullmatch(value)
    if match is None:
        return None
    digits = match.group(1) + match.group(2)
    if len(digits) == 10:
        digits = "0" + digits
    return digits


@dataclass(frozen=True, slots=True)
class ColumnVerdict:
    """One column's evidence: counts and kinds, never values."""

    name: str
    non_empty: int
    valid: int
    kinds: dict[NumberKind, int] = field(default_factory=dict)
    is_identity_column: bool = False

    @property
    def share(self) -> float:
        return self.valid / self.non_empty if self.non_empty else 0.0


@dataclass(frozen=True, slots=True)
class TableVerdict:
    columns: tuple[ColumnVerdict, ...]
    #: Rows judged: all of them when ``complete``, else the first ones (``decide_after``).
    rows: int
    complete: bool = True

    @property
    def identity_columns(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns if c.is_identity_column)


#: What registers and statistics packages write for a missing value: empty, not a value.
_MISSING = frozenset({"-", ".", "na", "n/a", "nan", "null", "none", "missing", "?"})


def _ruled_out(non_empty: int, valid: int, allowed_invalid: int | None, share: float) -> bool:
    """More invalid values than a decision allows, and a share below the threshold so far:
    the column cannot be an identity column. A few odd values at the top of a file sorted by
    it (codes for unknown, a header repeated) stay within what is allowed."""
    return allowed_invalid is not None and non_empty - valid > allowed_invalid and \
        valid < share * non_empty


def judge_table(header: Sequence[str], rows: Iterable[Sequence[str]], *, today: date,
                share: float, decide_after: int | None = None) -> TableVerdict:
    """Streams ``rows`` once, in constant memory per column. Short rows count as empty cells;
    cells beyond the header are ignored (a ragged file is judged by its named columns).

    ``decide_after``: stop once every column has that many non-empty values, or is ruled out
    (more invalid values than the share allows among that many, and a share below it so far;
    its counting stops there; missing-value markers are not values). A column's share is then
    known well enough: 100 values tell a column of identity numbers, nearly all valid, from
    one of account or random numbers, of which 1-8 % pass (a column whose true share lies
    within a few points of the threshold may fall either side, as it may when every value is
    judged). A large file is judged from its first rows instead of all of them, and the
    verdict says so (``complete`` False)."""
    width = len(header)
    non_empty = [0] * width
    valid = [0] * width
    kinds = [Counter[NumberKind]() for _ in range(width)]
    # A column with more invalid values than the share allows among ``decide_after`` cannot
    # be an identity column: with a decision pending, it is no longer looked at.
    allowed_invalid = None if decide_after is None else round((1 - share) * decide_after)
    active = list(range(width))
    count = 0
    complete = True
    for row in rows:
        if decide_after is not None and all(non_empty[i] >= decide_after for i in active):
            complete = False
            break
        count += 1
        cells = len(row)
        dropped = False
        for index in active:
            if index >= cells:
                break
            cell = row[index].strip()
            if not cell or (len(cell) <= 7 and cell.lower() in _MISSING):
                continue
            non_empty[index] += 1
            digits = as_identity_number(cell)
            verdict = None if digits is None else classify(digits, today)
            if verdict is not None:
                valid[index] += 1
                kinds[index][verdict.kind] += 1
            elif allowed_invalid is not None and \
                    non_empty[index] - valid[index] > allowed_invalid:
                dropped = True
        if dropped:
            active = [i for i in active if not _ruled_out(non_empty[i], valid[i],
                                                          allowed_invalid, share)]
    columns = tuple(
        ColumnVerdict(name=header[i], non_empty=non_empty[i], valid=valid[i],
                      kinds=dict(kinds[i]),
                      is_identity_column=non_empty[i] > 0 and valid[i] / non_empty[i] >= share)
        for i in range(width))
    return TableVerdict(columns, count, complete)


#: Digits as '9', the separators a split number may hold as 's': the shapes of a candidate
#: become two byte strings that ``bytes.find`` looks for at memory speed.
_SHAPES = bytes.maketrans(b"0123456789 .-", b"9999999999sss")
_RUN = b"9999999999"
_SPLIT = b"99999s99999"


def may_hold_identity_numbers(block: bytes) -> bool:
    """False only when ``block`` holds no run of 10 digits and no 5+5 digits split by a space,
    dot or dash: then no cell or text in it can be an identity number. Runs at about a
    gigabyte a second, so files with no candidate at all are never parsed. ASCII-compatible
    encodings only (UTF-8, Latin-1); a caller checks that first."""
    shaped = block.translate(_SHAPES)
    return _RUN in shaped or _SPLIT in shaped


@dataclass(frozen=True, slots=True)
class TextHits:
    """Identity numbers found in running text: each one a single hit, counted by kind."""

    hits: int
    kinds: dict[NumberKind, int]


def _count_hits(text: str, today: date, kinds: Counter[NumberKind], *, first: int,
                stop: int) -> None:
    for match in _CANDIDATE.finditer(text):
        if match.start() >= stop:
            break
        if match.start() < first:
            continue
        verdict = classify(match.group(1) + match.group(2), today)
        if verdict is not None:
            kinds[verdict.kind] += 1


def scan_text(chunks: Iterable[str], *, today: date) -> TextHits:
    """Streams text in chunks of any size, in constant memory; a number cut between two
    chunks is found, and found once. Each round counts the numbers that start well before the
    end of what has arrived (so the whole number and the character after it are there), then
    keeps the rest, and one character before it for the check that no digit precedes."""
    kinds: Counter[NumberKind] = Counter()
    buffer, first = "", 0
    for chunk in chunks:
        buffer += chunk
        cut = len(buffer) - _CARRY
        if cut <= first:
            continue
        _count_hits(buffer, today, kinds, first=first, stop=cut)
        buffer, first = buffer[cut - 1:], 1
    _count_hits(buffer, today, kinds, first=first, stop=len(buffer))
    return TextHits(sum(kinds.values()), dict(kinds))
