"""Making valid identity numbers for tests: synthetic by construction, never a real person's
(the tests pick their parts; a match with a real number would be chance)."""

from __future__ import annotations

import random

from stdnum.no import kontonr

from agent.storage.identity_numbers import FIRST_WEIGHTS, SECOND_WEIGHTS


def make(day: int, month: int, year: int, individual: int, remainder: int = 0) -> str | None:
    """The number with these parts whose first weighted sum leaves ``remainder``; None when
    no single check digit gives it (or the second check digit would be 10)."""
    body = [int(c) for c in f"{day:02d}{month:02d}{year:02d}{individual:03d}"]
    first = (remainder - sum(d * w for d, w in zip(body, FIRST_WEIGHTS, strict=False))) % 11
    if first > 9:
        return None
    body.append(first)
    second = -sum(d * w for d, w in zip(body, SECOND_WEIGHTS, strict=False)) % 11
    if second > 9:
        return None
    return "".join(map(str, [*body, second]))


def some(day: int, month: int, year: int, remainder: int = 0, start: int = 0) -> str:
    """The first individual number from ``start`` that gives valid check digits."""
    for individual in range(start, 1000):
        number = make(day, month, year, individual, remainder)
        if number is not None:
            return number
    raise AssertionError("no individual number gives valid check digits")


def bank_account_numbers(count: int, seed: int) -> list[str]:
    """Valid Norwegian account numbers (mod 11, the same as a fødselsnummer's second check)."""
    rnd = random.Random(seed)
    found: list[str] = []
    while len(found) < count:
        base = f"{rnd.randrange(10**10):010d}"
        number = base + kontonr._calc_check_digit(base)
        if kontonr.is_valid(number):
            found.append(number)
    return found


def valid_numbers(count: int, seed: int) -> list[str]:
    """Valid fødselsnummer made for a test, varied dates (some days 01-09, so some lose a
    leading zero in a spreadsheet) and individual numbers; the same for the same seed."""
    rnd = random.Random(seed)
    return [some(rnd.randint(1, 28), rnd.randint(1, 12), rnd.randint(0, 99),
                 start=rnd.randint(0, 400)) for _ in range(count)]
