"""Is this 11-digit string a Norwegian identity number? Pure, and never keeps the digits.

The storage rules (S4, S5, S7) act on files holding identity numbers, so every 11-digit run in
a file is put to this test. Validating is what keeps the detector from calling every phone
log or account list identifiable: a number counts only when both check digits hold and its
date is a real birth date, and even then a column is judged by the share of its values that
pass (about 1 % of random 11-digit numbers pass the current rule, 3 % the 2032 rule).

The rules (domain.md, "Norwegian identity numbers"):

- ``DDMMYY`` + a 3-digit individual number + 2 check digits, mod 11. The second check digit
  makes ``5 4 3 2 7 6 5 4 3 2 1`` over all 11 digits sum to 0 mod 11.
- The current rule: the first check digit makes ``3 7 6 1 8 9 4 5 2 1`` over the first 10
  digits sum to 0 mod 11, and the individual number tells the century.
- From 1 January 2032 (to people born earlier too) the first sum may also leave 1, 2 or 3, and
  the individual number tells neither century nor gender. Both rules hold side by side, so a
  number is valid when its date is a plausible birth date in some century.
- D-number: day + 40. H-number: month + 40. Synthetic test numbers: month + 80 (the Tax
  Administration's test environment); month + 40 in some others, which reads as an H-number.

Nothing here returns, logs or raises with the number itself: a ``Verdict`` names its kind and
rule only, so it can travel into violations and audit records.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from operator import mul

FIRST_WEIGHTS = (3, 7, 6, 1, 8, 9, 4, 5, 2, 1)
SECOND_WEIGHTS = (5, 4, 3, 2, 7, 6, 5, 4, 3, 2, 1)
#: ASCII digits to their values, for ``bytes.translate`` (the caller checked they are digits).
_DIGIT_VALUES = bytes.maketrans(b"0123456789", bytes(range(10)))
#: Remainders of the first weighted sum each rule allows.
CURRENT_REMAINDERS = frozenset({0})
REMAINDERS_FROM_2032 = frozenset({0, 1, 2, 3})
#: The earliest birth year the numbers encode (individual numbers 500-749 with years 54-99).
EARLIEST_BIRTH_YEAR = 1854


class NumberKind(StrEnum):
    FODSELSNUMMER = "fødselsnummer"
    D_NUMBER = "d-number"
    H_NUMBER = "h-number"
    SYNTHETIC = "synthetic"


class CheckRule(StrEnum):
    #: Check digits and century as numbers issued before 2032 have them.
    CURRENT = "current"
    #: Valid only under the rule for numbers issued from 2032.
    FROM_2032 = "2032"


@dataclass(frozen=True, slots=True)
class Verdict:
    """What an identity number is, without the number."""

    kind: NumberKind
    rule: CheckRule


def _weighted(digits: tuple[int, ...], weights: tuple[int, ...]) -> int:
    total: int = sum(map(mul, digits, weights))
    return total % 11


def _century_by_individual_number(individual: int, year: int) -> int | None:
    """The current rule's century, from the individual number; None where it names none."""
    if individual < 500:
        return 1900
    if individual < 750 and year >= 54:
        return 1800
    if year < 40:
        return 2000
    if individual >= 900:
        return 1900
    return None


def _real_birth_date(full_year: int, month: int, day: int, today: date) -> bool:
    if not (EARLIEST_BIRTH_YEAR <= full_year <= today.year and 1 <= month <= 12):
        return False
    if not 1 <= day <= calendar.monthrange(full_year, month)[1]:
        return False
    return date(full_year, month, day) <= today


def _kind_and_date(digits: tuple[int, ...]) -> tuple[NumberKind, int, int] | None:
    """The kind, and the day and month with their offsets removed; None for other offsets."""
    day = digits[0] * 10 + digits[1]
    month = digits[2] * 10 + digits[3]
    d_number = day > 40
    if d_number:
        day -= 40
    if 81 <= month <= 92:
        return NumberKind.SYNTHETIC, day, month - 80
    if 41 <= month <= 52:
        return NumberKind.H_NUMBER, day, month - 40
    if 1 <= month <= 12:
        return (NumberKind.D_NUMBER if d_number else NumberKind.FODSELSNUMMER), day, month
    return None


def classify(text: str, today: date) -> Verdict | None:
    """The verdict on ``text`` (exactly 11 ASCII digits), or None when it is not a valid
    identity number under either rule, as of ``today``."""
    if len(text) != 11 or not text.isascii() or not text.isdigit():
        return None
    digits = tuple(text.encode("ascii", "replace").translate(_DIGIT_VALUES))
    if _weighted(digits, SECOND_WEIGHTS) != 0:
        return None
    remainder = _weighted(digits, FIRST_WEIGHTS)
    if remainder not in REMAINDERS_FROM_2032:
        return None
    parsed = _kind_and_date(digits)
    if parsed is None:
        return None
    kind, day, month = parsed
    year = digits[4] * 10 + digits[5]
    if remainder in CURRENT_REMAINDERS:
        century = _century_by_individual_number(digits[6] * 100 + digits[7] * 10 + digits[8],
                                                year)
        if century is not None and _real_birth_date(century + year, month, day, today):
            return Verdict(kind, CheckRule.CURRENT)
    if any(_real_birth_date(century + year, month, day, today)
           for century in (1800, 1900, 2000)):
        return Verdict(kind, CheckRule.FROM_2032)
    return None


def is_identity_number(text: str, today: date) -> bool:
    return classify(text, today) is not None
