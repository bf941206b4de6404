"""Column evidence and text hits (S4): a column is judged by the share of its values that are
identity numbers, never by single hits; free text reports single hits, and nothing keeps a
number."""

from __future__ import annotations

import random
import re
from datetime import date

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.storage.evidence import (
    as_identity_number,
    judge_table,
    may_hold_identity_numbers,
    scan_text,
)
from agent.storage.identity_numbers import NumberKind
from tests.support.identity_numbers import bank_account_numbers, some
from tests.support.identity_numbers import valid_numbers as numbers

TODAY = date(2026, 11, 23)
SHARE = 0.9




def table(**columns: list[str]) -> tuple[list[str], list[list[str]]]:
    header = list(columns)
    return header, [list(row) for row in zip(*columns.values(), strict=True)]


def test_s4_a_column_of_identity_numbers_is_one_and_its_neighbours_are_not() -> None:
    rnd = random.Random(1)
    header, rows = table(
        fnr=numbers(500, 2),
        konto=bank_account_numbers(500, seed=3),
        random11=[f"{rnd.randrange(10**11):011d}" for _ in range(500)],
        hba1c=[str(rnd.randint(30, 90)) for _ in range(500)],
    )
    verdict = judge_table(header, rows, today=TODAY, share=SHARE)
    assert verdict.identity_columns == ("fnr",)
    assert verdict.rows == 500
    fnr, konto, random11, hba1c = verdict.columns
    assert (fnr.valid, fnr.non_empty, fnr.kinds) == (500, 500, {NumberKind.FODSELSNUMMER: 500})
    assert 0 < konto.share < 0.2 and random11.share < 0.05  # chance passes, not a column
    assert hba1c.valid == 0


def test_s4_nearly_all_is_the_policy_share_of_the_non_empty_values() -> None:
    valid, rnd = numbers(90, 4), random.Random(5)
    typos = [f"{rnd.randrange(10**11):011d}" for _ in range(10)]  # rarely valid by chance
    column = valid + typos + [""] * 50  # blanks do not count against the column
    header, rows = table(person=column)
    verdict = judge_table(header, rows, today=TODAY, share=SHARE)
    [person] = verdict.columns
    assert (person.non_empty, person.valid) == (100, 91)  # one random typo passes by chance
    assert verdict.identity_columns == ("person",)
    assert judge_table(header, rows, today=TODAY, share=0.95).identity_columns == ()


def test_s4_numbers_written_split_or_with_their_leading_zero_lost_are_counted() -> None:
    plain = [some(5, 3, 85), some(7, 11, 92), some(15, 6, 70)]
    written = [f"{plain[0][:6]} {plain[0][6:]}", f"{plain[1][:6]}-{plain[1][6:]}",
               plain[2]]
    assert [as_identity_number(w) for w in written] == plain
    lost_zero = plain[0].lstrip("0")
    assert len(lost_zero) == 10 and as_identity_number(lost_zero) == plain[0]
    header, rows = table(id=[*written, lost_zero])
    assert judge_table(header, rows, today=TODAY, share=SHARE).columns[0].valid == 4


def test_s4_short_rows_and_extra_cells_do_not_break_the_count() -> None:
    number = some(1, 2, 83)
    verdict = judge_table(["id", "x"], [[number], [number, "1", "extra", number]],
                          today=TODAY, share=SHARE)
    assert [(c.non_empty, c.valid) for c in verdict.columns] == [(2, 2), (1, 0)]


def test_s4_text_hits_are_single_hits_counted_by_kind() -> None:
    d_number = some(15 + 40, 10, 86)
    text = (f"Kontakt: {some(1, 2, 83)} (pasient), pårørende {d_number}. "
            f"Ikke et nummer: {'9' * 12}, kontonummer {bank_account_numbers(1, seed=6)[0][:4]}.")
    hits = scan_text([text], today=TODAY)
    assert hits.kinds.get(NumberKind.FODSELSNUMMER, 0) + hits.kinds.get(
        NumberKind.D_NUMBER, 0) == 2
    assert hits.kinds[NumberKind.D_NUMBER] == 1


@settings(max_examples=300)
@given(st.lists(st.integers(0, 400), max_size=12))
def test_s4_a_number_cut_between_two_chunks_is_found_once(cuts: list[int]) -> None:
    text = " ".join(f"note {n} end" for n in numbers(8, 7)) + " 01018512345678 tail"
    whole = scan_text([text], today=TODAY)
    points = sorted({min(c, len(text)) for c in cuts})
    chunks = [text[a:b] for a, b in zip([0, *points], [*points, len(text)], strict=True)]
    assert scan_text(chunks, today=TODAY) == whole
    assert whole.hits == 8  # the 14-digit run is not a number


def test_s4_verdicts_hold_counts_and_names_never_the_numbers() -> None:
    column = numbers(50, 8)
    header, rows = table(fnr=column)
    shown = repr(judge_table(header, rows, today=TODAY, share=SHARE)) + repr(
        scan_text([" ".join(column)], today=TODAY))
    assert not re.search(r"[0-9]{6}", shown)


def test_s4_a_large_table_is_decided_from_its_first_rows_and_says_so() -> None:
    rnd = random.Random(4)
    header, rows = table(fnr=numbers(5000, 9),
                         konto=bank_account_numbers(5000, seed=10),
                         hba1c=[str(rnd.randint(30, 90)) for _ in range(5000)])
    verdict = judge_table(header, iter(rows), today=TODAY, share=SHARE, decide_after=200)
    assert verdict.identity_columns == ("fnr",)
    assert not verdict.complete and verdict.rows < 5000
    fnr = verdict.columns[0]
    assert fnr.non_empty >= 200 and fnr.valid == fnr.non_empty
    # The account column was ruled out early: it stopped being counted.
    assert verdict.columns[1].non_empty < 200


def test_s4_deciding_early_agrees_with_judging_every_row() -> None:
    rnd = random.Random(5)
    header, rows = table(
        fnr=numbers(3000, 11),
        random11=[f"{rnd.randrange(10**11):011d}" for _ in range(3000)],
        mixed=[n if i % 3 else "" for i, n in enumerate(numbers(3000, 12))],
    )
    early = judge_table(header, rows, today=TODAY, share=SHARE, decide_after=200)
    full = judge_table(header, rows, today=TODAY, share=SHARE)
    assert early.identity_columns == full.identity_columns == ("fnr", "mixed")
    assert full.complete and full.rows == 3000


def test_s4_a_small_table_is_judged_whole_even_when_deciding_early() -> None:
    header, rows = table(fnr=numbers(50, 13))
    verdict = judge_table(header, rows, today=TODAY, share=SHARE, decide_after=200)
    assert verdict.complete and verdict.rows == 50 and verdict.identity_columns == ("fnr",)


@pytest.mark.parametrize(("text", "maybe"), [
    (b"lopenr;vekt\n1;70.5\n2;81.0\n", False),
    (b"12345678901", True),           # 11 digits
    (b"x;1234567890;y", True),        # 10: a number that lost its leading zero
    (b"010185 12345", True),          # split 6+5 by a space
    (b"01018.12345", True),           # 5+5 split by a dot
    (b"0101-12345", False),           # too short either side
    (b"123456789", False),
    (b"0.123456789", False),
])
def test_s4_the_quick_check_lets_no_candidate_through_unseen(text: bytes, maybe: bool) -> None:
    assert may_hold_identity_numbers(text) is maybe


@given(st.binary(max_size=400))
@settings(max_examples=300)
def test_s4_the_quick_check_never_misses_a_valid_number(noise: bytes) -> None:
    """Whatever surrounds a valid number, the quick check says 'maybe'."""
    number = numbers(1, len(noise))[0].encode()
    cut = len(noise) // 2
    assert may_hold_identity_numbers(noise[:cut] + number + noise[cut:])


def test_s4_placeholders_at_the_top_of_a_sorted_file_do_not_hide_its_identity_column() -> None:
    """Sorted by the number, a file starts with its missing and odd values."""
    odd = ["-"] * 30 + ["NA"] * 5 + ["ukjent"] * 8
    header, rows = table(fnr=odd + numbers(2000, 21))
    verdict = judge_table(header, rows, today=TODAY, share=SHARE, decide_after=100)
    assert verdict.identity_columns == ("fnr",)
    full = judge_table(header, rows, today=TODAY, share=SHARE)
    assert full.identity_columns == ("fnr",)
    assert full.columns[0].non_empty == 2008  # '-' and 'NA' are missing values, not values
