"""The identity-number validator (S4): both check-digit rules, D-, H- and synthetic numbers,
and plausible dates, with python-stdnum as the oracle for the current rule."""

from __future__ import annotations

import random
from datetime import date

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from stdnum.no import fodselsnummer

from agent.storage.identity_numbers import (
    CheckRule,
    NumberKind,
    Verdict,
    classify,
    is_identity_number,
)
from tests.support.identity_numbers import bank_account_numbers, make, some

TODAY = date(2026, 11, 23)


def test_s4_a_number_from_the_stdnum_documentation_is_a_fodselsnummer_by_the_current_rule(
) -> None:
    assert classify("15108695088", TODAY) == Verdict(NumberKind.FODSELSNUMMER,
                                                     CheckRule.CURRENT)
    assert classify("15108695077", TODAY) is None  # a check digit off


@pytest.mark.parametrize(("day", "month", "kind"), [
    (15, 10, NumberKind.FODSELSNUMMER),
    (15 + 40, 10, NumberKind.D_NUMBER),
    (15, 10 + 40, NumberKind.H_NUMBER),
    (15, 10 + 80, NumberKind.SYNTHETIC),
    (15 + 40, 10 + 80, NumberKind.SYNTHETIC),  # a synthetic D-number
])
def test_s4_d_h_and_synthetic_numbers_are_told_apart(day: int, month: int,
                                                     kind: NumberKind) -> None:
    assert classify(some(day, month, 86), TODAY) == Verdict(kind, CheckRule.CURRENT)


@pytest.mark.parametrize("remainder", [1, 2, 3])
def test_s4_numbers_issued_from_2032_pass_with_a_first_remainder_of_1_2_or_3(
        remainder: int) -> None:
    number = some(15, 10, 86, remainder)
    assert classify(number, TODAY) == Verdict(NumberKind.FODSELSNUMMER, CheckRule.FROM_2032)
    assert not fodselsnummer.is_valid(number)  # the current rule alone refuses it


@pytest.mark.parametrize("remainder", range(4, 11))
def test_s4_other_first_remainders_are_refused_by_both_rules(remainder: int) -> None:
    assert classify(some(15, 10, 86, remainder), TODAY) is None


def test_s4_the_second_check_digit_is_required_under_both_rules() -> None:
    for remainder in (0, 1, 2, 3):
        number = some(15, 10, 86, remainder)
        broken = number[:-1] + str((int(number[-1]) + 1) % 10)
        assert classify(broken, TODAY) is None


@pytest.mark.parametrize(("day", "month"), [(31, 2), (30, 2), (31, 4), (0, 5), (32, 1),
                                            (15, 13), (15, 0), (15, 40), (15, 60), (15, 93)])
def test_s4_impossible_dates_are_refused(day: int, month: int) -> None:
    for remainder in (0, 1, 2, 3):
        assert classify(some(day, month, 86, remainder), TODAY) is None


def test_s4_the_current_rule_takes_its_century_from_the_individual_number() -> None:
    # 29 February 2000 (individual 500-999, year < 40) exists; 29 February 1900 does not.
    assert classify(some(29, 2, 0, start=500), TODAY) == Verdict(
        NumberKind.FODSELSNUMMER, CheckRule.CURRENT)
    in_1900 = some(29, 2, 0, start=0)
    assert int(in_1900[6:9]) < 500
    # Not a 1900 date, so not valid by the current rule; the 2032 rule names no century, and
    # 2000 had a 29 February.
    assert classify(in_1900, TODAY) == Verdict(NumberKind.FODSELSNUMMER, CheckRule.FROM_2032)
    assert not fodselsnummer.is_valid(in_1900)


def test_s4_a_birth_date_after_today_is_not_the_current_rules_date() -> None:
    # Individual 500+ with year 26: born on 24 November 2026 by the current rule. Today that
    # date has not come, so only the 2032 rule (no century: 1926) can make it valid.
    tomorrow = some(24, 11, 26, start=500)
    assert classify(tomorrow, TODAY) == Verdict(NumberKind.FODSELSNUMMER, CheckRule.FROM_2032)
    assert classify(tomorrow, date(2026, 11, 24)) == Verdict(NumberKind.FODSELSNUMMER,
                                                             CheckRule.CURRENT)


@pytest.mark.parametrize("text", ["1510869508", "151086950881", "15108695O88", "151086 95088",
                                  "１５１０８６９５０８８", ""])
def test_s4_anything_but_eleven_ascii_digits_is_not_a_number(text: str) -> None:
    assert classify(text, TODAY) is None


@settings(max_examples=3000)
@given(st.text(alphabet="0123456789", min_size=11, max_size=11))
def test_s4_the_current_rule_agrees_with_python_stdnum(text: str) -> None:
    today = date.today()  # wall-clock: stdnum refuses births after its own today
    verdict = classify(text, today)
    ours = (verdict is not None and verdict.rule is CheckRule.CURRENT
            and verdict.kind is not NumberKind.SYNTHETIC)  # stdnum knows no synthetic numbers
    assert ours == fodselsnummer.is_valid(text)


@settings(max_examples=1000)
@given(st.integers(1, 28), st.integers(1, 12), st.integers(0, 99), st.integers(0, 999))
def test_s4_every_number_stdnum_accepts_is_accepted(day: int, month: int, year: int,
                                                    individual: int) -> None:
    number = make(day, month, year, individual)
    if number is not None and fodselsnummer.is_valid(number):
        assert is_identity_number(number, date.today())  # wall-clock: as stdnum's own


def _share(numbers: list[str]) -> float:
    return sum(is_identity_number(n, TODAY) for n in numbers) / len(numbers)


def test_s4_random_eleven_digit_numbers_rarely_pass_so_single_hits_prove_nothing() -> None:
    rnd = random.Random(20261123)
    numbers = [f"{rnd.randrange(10**11):011d}" for _ in range(100_000)]
    share = _share(numbers)
    assert 0.002 < share < 0.02  # measured: 0.7 %; a column of them is not an id column


def test_s4_bank_account_numbers_pass_the_second_check_but_rarely_the_whole_test() -> None:
    share = _share(bank_account_numbers(20_000, seed=20261124))
    assert 0.02 < share < 0.15  # measured: 8 %, far from a column's "nearly all" (0.9)


def test_s4_a_verdict_never_carries_the_number() -> None:
    number = some(15, 10, 86)
    verdict = classify(number, TODAY)
    assert verdict is not None
    assert number not in repr(verdict) and number not in str(verdict)
    assert not any(ch.isdigit() for ch in repr(verdict).replace("2032", ""))
