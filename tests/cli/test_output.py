"""What every listing does with other people's text and with times before a table shows them
(one place for all the commands: cli/output.py)."""

from __future__ import annotations

from cli.output import clean, minute, printable

PLACED = "2026-11-23T12:34:56.789012+00:00"


def test_other_peoples_text_cannot_split_a_record_or_reach_the_terminal_as_a_sequence() -> None:
    assert clean("tape\tT-1\nrow two\x1b[31mred\x07") == "tape T-1 row two [31mred "
    assert clean("Haukeland, K. Berg") == "Haukeland, K. Berg"


def test_times_show_to_the_minute_only_in_the_columns_named() -> None:
    assert minute(PLACED) == "2026-11-23 12:34"
    rows = [{"id": 3, "placed": PLACED, "released": None, "note": "a\nb", "ref": PLACED}]
    assert printable(rows, ("placed", "released")) == [
        {"id": 3, "placed": "2026-11-23 12:34", "released": None, "note": "a b", "ref": PLACED}]
    assert printable(rows) == [{**rows[0], "note": "a b"}]
