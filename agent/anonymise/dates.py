"""Date shifting per person (D4) and the date spellings the anonymisation accepts.

Why shift: linked sources make dates the most identifying values a table holds, yet research
needs the intervals between them (diagnosis to treatment, birth to admission). Every date of a
person therefore moves by one offset, the same in every column and every file of the project,
so the intervals stay true while the calendar dates no longer match any register.

Why an HMAC of the serial number: the offset must be the same wherever the serial number
appears (distributed linkage, D6) without a table of offsets to keep, and nobody without the
project's secret may recompute it and shift the dates back. The serial number is keyed with a
fixed domain-separation label, so the secret cannot be misused to derive anything else.

Serial numbers are compared as text, with two normalisations, because Stata and Parquet files
store serial numbers as numbers and a CSV file exported from a float column writes them with a
decimal point: a serial made only of digits loses its leading zeros ("00123" in a CSV file is
123 in the Stata file of the same project), and one of digits, a decimal point and only zeros
is that integer ("123.0" is 123). A float serial must be whole and below 2**53, where a float
still holds every integer exactly (beyond, two serials could read as one).

Accepted spellings of a date in a text column: ISO dates ``2019-05-17``, ISO date-times
``2019-05-17 13:45:00`` (or with ``T``, fractional seconds, a ``Z`` or ``+01:00`` suffix) and
Norwegian ``17.05.2019``. A shifted text keeps its own spelling; a date-time moves by whole
calendar days and keeps its time of day. An empty text is a missing date, like null.

A zoned date-time (polars ``Datetime`` with a time zone) moves by calendar days too, so it
keeps its wall-clock time across a clock change: 12:00 in winter stays 12:00 in summer, which
makes it 23 or 25 hours away from where 24 h steps would have put it. Where the wall-clock time
does not exist on the new day (the hour skipped when summer time begins) it moves forward by
the skipped length, as clocks do; where it exists twice (the hour repeated in autumn) it keeps
its own UTC offset when that is one of the two, else takes the earlier.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from datetime import date
from typing import Literal

import polars as pl

from agent.anonymise.columns import as_text
from agent.errors import InvalidRequest

DateForm = Literal["iso", "iso-datetime", "dmy"]

#: The offset's domain: a different label gives unrelated offsets from the same secret.
_OFFSET_LABEL = b"vokter/D4/date-shift-offset/v1\x00"
_ISO_DATE = r"^\d{4}-\d{2}-\d{2}$"
_ISO_DATETIME = (
    r"^\d{4}-\d{2}-\d{2}[T ](?:[01]\d|2[0-3]):[0-5]\d(?::[0-5]\d(?:\.\d{1,9})?)?"
    r"(?:Z|[+-](?:[01]\d|2[0-3]):?[0-5]\d)?$"
)
_DMY_DATE = r"^\d{2}\.\d{2}\.\d{4}$"
_ISO_DATE_RE = re.compile(_ISO_DATE)
_ISO_DATETIME_RE = re.compile(_ISO_DATETIME)
_DMY_DATE_RE = re.compile(_DMY_DATE)
_DIGITS_RE = re.compile(r"^\d+$")
_WHOLE_DECIMAL_RE = re.compile(r"^\d+\.0+$")
#: Floats hold every integer exactly below this; above it a serial could be another's.
_EXACT_FLOAT_LIMIT = 2.0**53
MAX_SHIFT_DAYS = 3650


def read_date_text(text: str) -> tuple[date, DateForm] | None:
    """The calendar date a text spells and which spelling it is; None when it is no date in an
    accepted spelling, or an impossible one such as 2019-02-30."""
    try:
        if _ISO_DATE_RE.match(text):
            return date(int(text[0:4]), int(text[5:7]), int(text[8:10])), "iso"
        if _ISO_DATETIME_RE.match(text):
            return date(int(text[0:4]), int(text[5:7]), int(text[8:10])), "iso-datetime"
        if _DMY_DATE_RE.match(text):
            return date(int(text[6:10]), int(text[3:5]), int(text[0:2])), "dmy"
    except ValueError:
        return None
    return None


def normalise_serial(serial: str) -> str:
    """The serial number as the offset is keyed on (see the module's docstring)."""
    text = serial.strip()
    if _WHOLE_DECIMAL_RE.match(text):
        text = text.partition(".")[0]
    if _DIGITS_RE.match(text):
        return text.lstrip("0") or "0"
    return text


def _check_shift(secret: bytes, max_days: int) -> None:
    if not 1 <= max_days <= MAX_SHIFT_DAYS:
        raise InvalidRequest(f"max_shift_days {max_days} is outside 1..{MAX_SHIFT_DAYS}",
                             rule="D4")
    if not secret:
        raise InvalidRequest("the date-shift secret is empty", rule="D4")


def date_offset(secret: bytes, serial: str, max_days: int) -> int:
    """The person's offset in days: in [-max_days, -1] or [1, max_days], never zero (a zero
    offset would leave that person's real dates in the output)."""
    _check_shift(secret, max_days)
    digest = hmac.digest(secret, _OFFSET_LABEL + normalise_serial(serial).encode(), hashlib.sha256)
    # 2**64 against at most 7300 outcomes: the bias of the modulo is below 1e-15.
    drawn = int.from_bytes(digest[:8], "big") % (2 * max_days)
    return drawn - max_days if drawn < max_days else drawn - max_days + 1


def _serial_texts(serials: pl.Series) -> pl.Series:
    """Serial numbers as text, whatever the file stored them as, spelt as the hierarchies and
    the identity screen see the same column (columns.as_text). Floats are refused unless whole
    and exact, rather than keyed on a text such as "42.5" that no other file of the project
    would spell the same person by."""
    if serials.dtype.is_float():
        exact = serials.is_finite() & (serials == serials.round(0)) & (
            serials.abs() < _EXACT_FLOAT_LIMIT)
        if not bool((serials.is_null() | exact).all()):
            raise InvalidRequest(f"serial column {serials.name!r} holds numbers that are not "
                                 "whole (or too large for a float to hold exactly)", rule="D4",
                                 hint="name the serial-number column")
    return as_text(serials)


def _describe_rows(mask: pl.Series) -> str:
    """'rows 3, 7 and 2 more' for a boolean mask, 1-based as a person counts data rows."""
    rows = mask.arg_true()
    shown = ", ".join(str(int(row) + 1) for row in rows.head(3))
    more = f" and {rows.len() - 3} more" if rows.len() > 3 else ""
    return f"row{'s' if rows.len() > 1 else ''} {shown}{more}"


def _offsets(column: pl.Series, serials: pl.Series, present: pl.Series, secret: bytes,
             max_days: int) -> pl.Series:
    """One offset per row (null where the date is missing), one HMAC per distinct serial."""
    if serials.len() != column.len():
        raise InvalidRequest(f"date column {column.name!r} has {column.len()} rows but the "
                             f"serial column {serials.name!r} has {serials.len()}", rule="D4")
    texts = _serial_texts(serials)
    no_serial = (present & (texts.is_null() | (texts.str.strip_chars() == ""))).fill_null(False)
    if bool(no_serial.any()):
        raise InvalidRequest(
            f"date column {column.name!r} has a date on {_describe_rows(no_serial)} without a "
            f"serial number in {serials.name!r}", rule="D4",
            hint="every dated row needs its serial number; dates are never shifted by a guess")
    distinct = texts.filter(present).unique().to_list()
    offsets = [date_offset(secret, serial, max_days) for serial in distinct]
    mapped = texts.replace_strict(distinct, offsets, default=None, return_dtype=pl.Int32)
    return mapped.zip_with(present, pl.repeat(None, mapped.len(), dtype=pl.Int32, eager=True))


def _shift_text(column: pl.Series, offsets: pl.Series) -> pl.Series:
    """Shift ISO dates, ISO date-times and dd.mm.yyyy dates, each in its own spelling."""
    frame = pl.DataFrame({"text": column, "offset": offsets})
    text = pl.col("text")
    days = pl.duration(days=pl.col("offset"))
    iso = text.str.contains(_ISO_DATE)
    iso_dt = text.str.contains(_ISO_DATETIME)
    dmy = text.str.contains(_DMY_DATE)
    date_part = (
        pl.when(dmy).then(text.str.strptime(pl.Date, "%d.%m.%Y", strict=False))
        .when(iso | iso_dt).then(text.str.slice(0, 10).str.strptime(pl.Date, "%Y-%m-%d",
                                                                   strict=False))
        .otherwise(None)
    )
    frame = frame.with_columns(date_part.alias("day"))
    bad = frame.select(text.is_not_null() & (text != "") & pl.col("day").is_null()).to_series()
    if bool(bad.any()):
        raise InvalidRequest(
            f"date column {column.name!r} holds text that is not a date on {_describe_rows(bad)}",
            rule="D4", hint="write dates as YYYY-MM-DD, YYYY-MM-DD HH:MM:SS or dd.mm.yyyy")
    moved = pl.col("day") + days
    shifted = (
        pl.when(dmy).then(moved.dt.strftime("%d.%m.%Y"))
        .when(iso).then(moved.dt.strftime("%Y-%m-%d"))
        .when(iso_dt).then(moved.dt.strftime("%Y-%m-%d") + text.str.slice(10))
        .otherwise(text)
    )
    return frame.select(shifted.alias(column.name)).to_series()


def _utc_offset(moment: pl.Expr) -> pl.Expr:
    return moment.dt.base_utc_offset() + moment.dt.dst_offset()


def _shift_zoned(column: pl.Series, offsets: pl.Series, zone: str) -> pl.Series:
    """Zoned date-times moved by calendar days at the same wall-clock time (see the module's
    docstring for the skipped and the repeated hour); vectorised, no row at a time."""
    frame = pl.DataFrame({"value": column, "offset": offsets})
    value = pl.col("value")
    wall = value.dt.replace_time_zone(None) + pl.duration(days=pl.col("offset"))
    earliest = wall.dt.replace_time_zone(zone, ambiguous="earliest", non_existent="null")
    latest = wall.dt.replace_time_zone(zone, ambiguous="latest", non_existent="null")
    # A wall-clock time in a gap: read with the offset in force before the gap. A day back
    # from the wall time read as UTC lies before the gap in every zone (offsets are within
    # +-14 h), and no zone changes its offset twice within those hours.
    before_gap = (wall - pl.duration(days=1)).dt.replace_time_zone("UTC") \
        .dt.convert_time_zone(zone)
    forward = (wall - _utc_offset(before_gap)).dt.replace_time_zone("UTC") \
        .dt.convert_time_zone(zone)
    shifted = (
        pl.when(value.is_null()).then(None)
        .when(earliest.is_null()).then(forward)
        .when(_utc_offset(latest) == _utc_offset(value)).then(latest)
        .otherwise(earliest)
    )
    return frame.select(shifted.cast(column.dtype).alias(column.name)).to_series()


def shift_dates(column: pl.Series, serials: pl.Series, secret: bytes,
                max_days: int) -> pl.Series:
    """``column`` with each row's date moved by the offset of that row's serial number (D4).

    Missing dates stay missing; a date whose row has no serial number is refused rather than
    left real or shifted by a guess. The result keeps the column's name and type."""
    _check_shift(secret, max_days)
    if column.dtype == pl.Date or isinstance(column.dtype, pl.Datetime):
        present = column.is_not_null()
        offsets = _offsets(column, serials, present, secret, max_days)
        if isinstance(column.dtype, pl.Datetime) and column.dtype.time_zone is not None:
            return _shift_zoned(column, offsets, column.dtype.time_zone)
        # A date, or a date-time without a zone: a day is 24 h, the time of day stays.
        frame = pl.DataFrame({"value": column, "offset": offsets})
        shifted = pl.col("value") + pl.duration(days=pl.col("offset"))
        return frame.select(shifted.cast(column.dtype).alias(column.name)).to_series()
    if column.dtype == pl.Utf8:
        present = (column.is_not_null() & (column != "")).fill_null(False)
        offsets = _offsets(column, serials, present, secret, max_days)
        return _shift_text(column, offsets)
    raise InvalidRequest(f"date column {column.name!r} holds {column.dtype}, not dates",
                         rule="D4", hint="name only date, date-time or text date columns")
