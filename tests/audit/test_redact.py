"""Identity numbers never reach the trail: paths and programs are masked before recording."""

from __future__ import annotations

import pytest

from agent.audit.redact import MASK, has_identity_number, redact_identity_numbers
from tests.support.identity_numbers import valid_numbers


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("/z/p1/data/01019912345.csv", f"/z/p1/data/{MASK}.csv"),
        ("/z/p1/data/010199 12345-notes", f"/z/p1/data/{MASK}-notes"),
        ("/z/p1/data/010199-12345", f"/z/p1/data/{MASK}"),
        ("a 01019912345 and 31129954321", f"a {MASK} and {MASK}"),
    ],
)
def test_identity_numbers_in_paths_are_masked(text: str, expected: str) -> None:
    assert redact_identity_numbers(text) == expected


@pytest.mark.parametrize("text", ["/z/p1/data/2026-11-23.csv", "cohort_1234567890.csv",
                                  "/z/p1/data/012345678901234.bin", "pid 4242"])
def test_other_numbers_are_left_alone(text: str) -> None:
    assert redact_identity_numbers(text) == text


@pytest.mark.parametrize("text", [
    "master key 35217724739beced",                # a key id: 1 in 30 holds 11 digits in a row
    "hash 9f86d081884c7d659a2feaa0c55ad01501019912345e8b8c4c4b3fd8cc6d1d0f",
])
def test_key_ids_and_hashes_are_not_taken_for_identity_numbers(text: str) -> None:
    assert redact_identity_numbers(text) == text


@pytest.mark.parametrize(("text", "expected"), [
    ("/z/id01019912345.csv", f"/z/id{MASK}.csv"),          # short: a name, not a digest
    ("fnr 01019912345abc", f"fnr {MASK}abc"),              # under 16 hex characters
    ("0123456789abcdef 01019912345", f"0123456789abcdef {MASK}"),
    ("DEADBEEF01019912345CAFE", f"DEADBEEF{MASK}CAFE"),   # not the lowercase hex we print
])
def test_an_identity_number_beside_letters_is_still_masked(text: str, expected: str) -> None:
    assert redact_identity_numbers(text) == expected


def test_s4_the_shorter_spellings_of_a_valid_number_are_masked_too() -> None:
    """10 digits (a spreadsheet dropped the leading zero) and 5+5: what the storage rules
    read as an identity number is never recorded either; other 10-digit runs stay."""
    number = valid_numbers(40, seed=8)
    short = next(n for n in number if n.startswith("0"))[1:]
    assert redact_identity_numbers(f"/z/p1/data/{short}.csv") == f"/z/p1/data/{MASK}.csv"
    assert redact_identity_numbers(f"columns {short[:5]} {short[5:]} x") == f"columns {MASK} x"
    assert has_identity_number(f"a {short} b")
    assert redact_identity_numbers("epoch 1700000000 and 4790000000") == \
        "epoch 1700000000 and 4790000000"


def test_s4_a_valid_number_inside_a_hex_token_is_masked() -> None:
    number = valid_numbers(1, seed=9)[0]
    assert MASK in redact_identity_numbers(f"feedface{number}.csv")
    assert MASK in redact_identity_numbers(f"{number}abcdef0123")
