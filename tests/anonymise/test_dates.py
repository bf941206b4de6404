"""Date shifting per person (D4): one offset per serial number in every column and file, true
intervals, the secret keying it, missing dates and serials, each text spelling kept; and the
secret file's own refusals, on real files."""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo

import polars as pl
import pyreadstat
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.anonymise.dates import date_offset, normalise_serial, read_date_text, shift_dates
from agent.anonymise.tables import read_table
from agent.errors import InvalidRequest

SECRET = bytes(range(32))
OTHER_SECRET = bytes(range(1, 33))


def offset_days(before: pl.Series, after: pl.Series) -> list[int | None]:
    return [None if a is None or b is None else (a - b).days
            for b, a in zip(before.to_list(), after.to_list(), strict=True)]


# --- the offset ---------------------------------------------------------------------------------


def test_d4_offset_is_the_documented_hmac_and_does_not_change_between_versions() -> None:
    # Frozen: a project's later files must shift like its earlier ones, whatever release made
    # them. Recomputed here from the definition: HMAC-SHA256, first 8 bytes, mod 2*max.
    digest = hmac.digest(SECRET, b"vokter/D4/date-shift-offset/v1\x00" + b"42", hashlib.sha256)
    drawn = int.from_bytes(digest[:8], "big") % 360
    expected = drawn - 180 if drawn < 180 else drawn - 179
    assert date_offset(SECRET, "42", 180) == expected
    assert [date_offset(SECRET, str(serial), 180) for serial in range(1, 6)] == \
        [133, 118, -102, 58, 42]


@given(st.text(max_size=30), st.integers(1, 3650))
def test_d4_offsets_are_never_zero_and_within_range(serial: str, max_days: int) -> None:
    offset = date_offset(SECRET, serial, max_days)
    assert offset != 0
    assert -max_days <= offset <= max_days


def test_d4_both_signs_and_both_ends_of_the_range_occur() -> None:
    offsets = {date_offset(SECRET, str(serial), 2) for serial in range(200)}
    assert offsets == {-2, -1, 1, 2}


def test_d4_another_secret_gives_other_offsets() -> None:
    mine = [date_offset(SECRET, str(serial), 180) for serial in range(300)]
    theirs = [date_offset(OTHER_SECRET, str(serial), 180) for serial in range(300)]
    # Chance alone makes about one in 360 equal.
    assert sum(a == b for a, b in zip(mine, theirs, strict=True)) < 10


def test_d4_a_serial_stored_as_a_number_is_the_same_person() -> None:
    assert date_offset(SECRET, "00042", 180) == date_offset(SECRET, "42", 180)
    assert date_offset(SECRET, " 42 ", 180) == date_offset(SECRET, "42", 180)
    assert date_offset(SECRET, "0", 180) == date_offset(SECRET, "000", 180)
    assert date_offset(SECRET, "A42", 180) != date_offset(SECRET, "A042", 180)


@pytest.mark.parametrize(("written", "meant"), [
    ("123.0", "123"), ("123.000", "123"), ("00123.0", "123"), (" 123.0 ", "123"), ("0.0", "0"),
    ("123.5", "123.5"), ("123.", "123."), ("123.01", "123.01"), ("1.23e2", "1.23e2"),
    ("A123.0", "A123.0"), ("-123.0", "-123.0"),
])
def test_d4_a_serial_written_from_a_float_is_its_integer_and_nothing_else_changes(
        written: str, meant: str) -> None:
    assert normalise_serial(written) == meant


def test_d4_one_serial_from_a_csv_a_parquet_and_a_stata_file_is_one_person(
        tmp_path: Path) -> None:
    # Three owners, three spellings of serial 123: a CSV exported from a double column, a
    # Parquet integer and a Stata float, each read as the anonymisation reads them.
    (tmp_path / "a.csv").write_text("lopenr;innlagt\n123.0;2019-01-02\n")
    pl.DataFrame({"lopenr": [123], "innlagt": [date(2019, 1, 2)]}) \
        .write_parquet(tmp_path / "b.parquet")
    pyreadstat.write_dta(pl.DataFrame({"lopenr": [123.0], "innlagt": [date(2019, 1, 2)]}),
                         tmp_path / "c.dta")
    moved = []
    for name, serial_type in (("a.csv", pl.Utf8), ("b.parquet", pl.Int64),
                              ("c.dta", pl.Float64)):
        frame = read_table(tmp_path / name).frame
        assert frame["lopenr"].dtype == serial_type
        shifted = shift_dates(frame["innlagt"], frame["lopenr"], SECRET, 180)
        moved.append(date.fromisoformat(str(shifted[0])[:10]) - date(2019, 1, 2))
    assert moved == [timedelta(days=date_offset(SECRET, "123", 180))] * 3


@pytest.mark.parametrize("max_days", [0, -5, 3651])
def test_d4_a_shift_range_outside_one_to_ten_years_is_refused(max_days: int) -> None:
    with pytest.raises(InvalidRequest, match=r"outside 1\.\.3650"):
        date_offset(SECRET, "1", max_days)
    with pytest.raises(InvalidRequest, match=r"outside 1\.\.3650"):
        shift_dates(pl.Series([date(2020, 1, 1)]), pl.Series([1]), SECRET, max_days)


def test_d4_an_empty_secret_is_refused() -> None:
    with pytest.raises(InvalidRequest, match="secret is empty"):
        date_offset(b"", "1", 10)


# --- shifting columns ---------------------------------------------------------------------------


def test_d4_same_serial_same_offset_in_two_columns_and_two_files(tmp_path: Path) -> None:
    # One owner delivers CSV with zero-padded text serials, another Parquet with numbers.
    csv_file, parquet_file = tmp_path / "a.csv", tmp_path / "b.parquet"
    csv_file.write_text("lopenr;fodt;innlagt\n00042;1980-05-17;2019-01-02\n"
                        "00007;1975-12-24;2019-03-04\n")
    pl.DataFrame({"lopenr": [7, 42], "dod": [date(2020, 6, 1), date(2021, 7, 8)]}) \
        .write_parquet(parquet_file)
    first = pl.read_csv(csv_file, separator=";", schema_overrides={"lopenr": pl.Utf8},
                        try_parse_dates=True)
    second = pl.read_parquet(parquet_file)
    assert first["lopenr"].to_list() == ["00042", "00007"]
    moved = {
        name: offset_days(first[name], shift_dates(first[name], first["lopenr"], SECRET, 180))
        for name in ("fodt", "innlagt")
    }
    moved_dod = offset_days(second["dod"], shift_dates(second["dod"], second["lopenr"], SECRET,
                                                       180))
    person_42, person_7 = date_offset(SECRET, "42", 180), date_offset(SECRET, "7", 180)
    assert moved["fodt"] == moved["innlagt"] == [person_42, person_7]
    assert moved_dod == [person_7, person_42]
    assert person_42 != person_7


@settings(max_examples=60)
@given(st.lists(st.tuples(st.integers(0, 40), st.dates(date(1900, 1, 1), date(2090, 1, 1)),
                          st.dates(date(1900, 1, 1), date(2090, 1, 1))), min_size=1, max_size=40))
def test_d4_intervals_stay_true_per_person(rows: list[tuple[int, date, date]]) -> None:
    serials = pl.Series("lopenr", [serial for serial, _, _ in rows])
    start = pl.Series("start", [first for _, first, _ in rows])
    end = pl.Series("end", [second for _, _, second in rows])
    new_start = shift_dates(start, serials, SECRET, 365).to_list()
    new_end = shift_dates(end, serials, SECRET, 365).to_list()
    by_person: dict[int, set[int]] = {}
    for (serial, first, second), shifted_first, shifted_second in zip(
            rows, new_start, new_end, strict=True):
        assert shifted_second - shifted_first == second - first
        assert shifted_first != first
        by_person.setdefault(serial, set()).add((shifted_first - first).days)
    assert all(len(offsets) == 1 for offsets in by_person.values())


def test_d4_nulls_are_kept_and_need_no_serial() -> None:
    days = pl.Series("d", [date(2020, 1, 1), None, None])
    shifted = shift_dates(days, pl.Series("s", [1, None, 2]), SECRET, 30)
    assert shifted.name == "d"
    assert shifted.dtype == pl.Date
    assert shifted.to_list()[1:] == [None, None]
    assert shifted[0] == date(2020, 1, 1) + timedelta(days=date_offset(SECRET, "1", 30))


@pytest.mark.parametrize("missing", [None, "", "  "])
def test_d4_a_date_without_a_serial_is_refused(missing: str | None) -> None:
    days = pl.Series("innlagt", ["2020-01-01", "2020-01-02", "2020-01-03"])
    with pytest.raises(InvalidRequest) as raised:
        shift_dates(days, pl.Series("lopenr", ["1", missing, "3"]), SECRET, 30)
    line = raised.value.one_line()
    assert "'innlagt'" in line
    assert "row 2 " in line
    assert "'lopenr'" in line
    assert "(D4)" in line


def test_d4_text_dates_keep_their_own_spelling() -> None:
    texts = ["2019-05-17", "17.05.2019", "2019-05-17 13:45:00", "2019-05-17T13:45:00.25+01:00",
             "2019-05-17T08:00Z", None, ""]
    shifted = shift_dates(pl.Series("dato", texts), pl.Series(["9"] * 7), SECRET, 180)
    day = date(2019, 5, 17) + timedelta(days=date_offset(SECRET, "9", 180))
    iso, dmy = day.isoformat(), f"{day.day:02d}.{day.month:02d}.{day.year}"
    assert shifted.dtype == pl.Utf8
    assert shifted.to_list() == [iso, dmy, f"{iso} 13:45:00", f"{iso}T13:45:00.25+01:00",
                                 f"{iso}T08:00Z", None, ""]
    assert all(read_date_text(text) is not None for text in shifted.to_list()[:5])


@pytest.mark.parametrize("bad", ["2019-02-30", "31.04.2019", "2019-05-17 24:00:00", "tomorrow",
                                 "2019/05/17"])
def test_d4_text_that_is_no_date_is_refused_naming_column_and_row(bad: str) -> None:
    with pytest.raises(InvalidRequest) as raised:
        shift_dates(pl.Series("fodt", ["2019-01-01", "2019-01-01", bad]),
                    pl.Series([1, 2, 3]), SECRET, 30)
    assert "'fodt'" in raised.value.message
    assert "row 3" in raised.value.message


def test_d4_datetimes_keep_type_time_unit_and_zone() -> None:
    moments = pl.Series("t", [datetime(2020, 3, 1, 12, tzinfo=UTC), None]) \
        .cast(pl.Datetime("ms", "UTC"))
    shifted = shift_dates(moments, pl.Series(["5", None]), SECRET, 90)
    assert shifted.dtype == pl.Datetime("ms", "UTC")
    assert shifted.to_list() == [datetime(2020, 3, 1, 12, tzinfo=UTC)
                                 + timedelta(days=date_offset(SECRET, "5", 90)), None]


@pytest.mark.parametrize("bad", [42.5, float("nan"), float("inf"), 2.0**53, -(2.0**60)])
def test_d4_float_serials_must_be_whole_and_exact(bad: float) -> None:
    days = pl.Series("d", [date(2020, 1, 1), date(2020, 1, 1)])
    assert shift_dates(days, pl.Series([42.0, 2.0**53 - 1]), SECRET, 30).to_list() == \
        shift_dates(days, pl.Series(["42", str(2**53 - 1)]), SECRET, 30).to_list()
    with pytest.raises(InvalidRequest, match="not whole") as raised:
        shift_dates(days, pl.Series("lopenr", [42.0, bad]), SECRET, 30)
    assert "'lopenr'" in raised.value.message


OSLO = ZoneInfo("Europe/Oslo")


def oslo(year: int, month: int, day: int, hour: int, minute: int = 0, second: int = 0
         ) -> datetime:
    """A wall-clock time in Oslo that exists (checked, so a test cannot ask for 02:30 on
    the day summer time begins)."""
    wall = datetime(year, month, day, hour, minute, second)
    moment = wall.replace(tzinfo=OSLO)
    assert moment.astimezone(UTC).astimezone(OSLO).replace(tzinfo=None) == wall
    return moment


def zoned(moments: list[datetime | None], unit: Literal["ms", "us", "ns"] = "us") -> pl.Series:
    return pl.Series("t", moments, dtype=pl.Datetime(unit, "Europe/Oslo"))


def test_d4_zoned_datetimes_keep_their_time_of_day_across_both_clock_changes() -> None:
    # Serials 1, 2, 3 move by +133, +118 and -102 days (the frozen offsets above).
    before = [oslo(2021, 3, 20, 12), oslo(2021, 9, 15, 8, 5), oslo(2021, 12, 1, 23, 59, 59),
              oslo(2021, 3, 1, 0, 0), None]
    shifted = shift_dates(zoned(before, "ms"), pl.Series(["2", "1", "3", "1", None]), SECRET,
                          180)
    assert shifted.dtype == pl.Datetime("ms", "Europe/Oslo")
    after = shifted.to_list()
    # Winter to summer (spring forward), summer to winter (fall back), and back across it.
    assert after == [oslo(2021, 7, 16, 12), oslo(2022, 1, 26, 8, 5),
                     oslo(2021, 8, 21, 23, 59, 59), oslo(2021, 7, 12, 0, 0), None]
    assert [a.utcoffset() for a in after[:4]] == \
        [timedelta(hours=2), timedelta(hours=1), timedelta(hours=2), timedelta(hours=2)]


def test_d4_a_skipped_wall_clock_time_moves_forward_and_a_repeated_one_keeps_its_offset() -> (
        None):
    # With at most one day of shift: serial 2 moves +1 day, serial 0 moves -1 day.
    assert (date_offset(SECRET, "2", 1), date_offset(SECRET, "0", 1)) == (1, -1)
    utc = [datetime(2021, 3, 27, 1, 30, tzinfo=UTC),   # 02:30 CET, the day before spring
           datetime(2021, 3, 29, 0, 30, tzinfo=UTC),   # 02:30 CEST, the day after
           datetime(2021, 10, 30, 0, 30, tzinfo=UTC),  # 02:30 CEST, the day before autumn
           datetime(2021, 11, 1, 1, 30, tzinfo=UTC)]   # 02:30 CET, the day after
    shifted = shift_dates(zoned(list(utc)), pl.Series(["2", "0", "2", "0"]), SECRET, 1)
    assert [moment.astimezone(UTC) for moment in shifted.to_list()] == [
        datetime(2021, 3, 28, 1, 30, tzinfo=UTC),   # 02:30 does not exist: 03:30 CEST
        datetime(2021, 3, 28, 1, 30, tzinfo=UTC),   # from either side
        datetime(2021, 10, 31, 0, 30, tzinfo=UTC),  # the first 02:30, still CEST
        datetime(2021, 10, 31, 1, 30, tzinfo=UTC),  # the second 02:30, still CET
    ]


def test_d4_a_million_zoned_rows_keep_their_wall_clock_time_per_person() -> None:
    rows = 1_000_000
    serials = pl.int_range(0, rows, eager=True) % 250_000
    # Every 7th part of an hour over 16 years of Oslo time: thousands of clock changes.
    moments = (pl.int_range(0, rows, eager=True) * (3_600_000_000 // 7 * 1_000)) \
        .cast(pl.Datetime("us", "UTC")).dt.convert_time_zone("Europe/Oslo").alias("t")
    shifted = shift_dates(moments, serials, SECRET, 180)
    frame = pl.DataFrame({
        "serial": serials,
        "days": (shifted.dt.date() - moments.dt.date()).dt.total_days(),
        "kept": shifted.dt.time() == moments.dt.time(),
    })
    skipped = frame.filter(~pl.col("kept"))
    # Only wall-clock times in a skipped hour may differ (by that hour, checked above).
    assert skipped.height < rows // 1000
    per_person = frame.filter(pl.col("kept")).group_by("serial") \
        .agg(pl.col("days").n_unique().alias("offsets"), pl.col("days").first())
    assert per_person["offsets"].max() == 1
    sample = per_person.sort("serial").head(3)["days"].to_list()
    assert sample == [date_offset(SECRET, str(serial), 180) for serial in range(3)]


def test_d4_a_column_that_holds_no_dates_is_refused() -> None:
    with pytest.raises(InvalidRequest, match="holds Int64, not dates"):
        shift_dates(pl.Series("vekt", [70]), pl.Series([1]), SECRET, 30)


def test_d4_columns_of_different_lengths_are_refused() -> None:
    with pytest.raises(InvalidRequest, match="has 2 rows"):
        shift_dates(pl.Series("d", [date(2020, 1, 1)] * 2), pl.Series("s", [1]), SECRET, 30)


def test_d4_a_million_rows_shift_with_one_offset_per_person() -> None:
    rows = 1_000_000
    serials = pl.int_range(0, rows, eager=True) % 250_000
    days = (pl.int_range(0, rows, eager=True) % 20_000).cast(pl.Date)
    shifted = shift_dates(days.alias("d"), serials, SECRET, 180)
    moved = (shifted.cast(pl.Int32) - days.cast(pl.Int32)).alias("moved")
    per_person = pl.DataFrame({"serial": serials, "moved": moved}) \
        .group_by("serial").agg(pl.col("moved").n_unique().alias("offsets"),
                                pl.col("moved").first())
    assert per_person.height == 250_000
    assert per_person["offsets"].max() == 1
    assert (per_person["moved"] != 0).all()
    sample = per_person.sort("serial").head(3)["moved"].to_list()
    assert sample == [date_offset(SECRET, str(serial), 180) for serial in range(3)]
