"""Identity numbers never reach the trail: paths and programs are masked before recording."""

from __future__ import annotations

import pytest

from agent.audit.redact import MASK, redact_identity_numbers


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
