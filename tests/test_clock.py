"""The injected clock: a FakeClock that jumps (years in no time), and a SystemClock in UTC."""

from __future__ import annotations

import os
import time
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path

import pytest

from agent.clock import Clock, FakeClock, SystemClock

START = datetime(2026, 1, 1, 9, 30, tzinfo=UTC)


def test_fake_clock_stands_still_until_told() -> None:
    clock = FakeClock(START)
    assert clock.now() == START
    assert clock.now() == START
    assert clock.monotonic() == 0.0


def test_fake_clock_jumps_twenty_five_years_at_once() -> None:
    clock = FakeClock(START)
    began = time.monotonic()
    clock.advance(timedelta(days=25 * 365))
    assert time.monotonic() - began < 1.0  # no sleeping
    assert clock.now() == START + timedelta(days=25 * 365)
    assert clock.now().date() == date(2050, 12, 26)  # 25*365 days, six leap days short of 25y
    assert clock.monotonic() == pytest.approx(25 * 365 * 86400)
    assert clock.now().tzinfo is not None


def test_fake_clock_advances_in_steps_and_monotonic_follows() -> None:
    clock = FakeClock(START)
    clock.advance(timedelta(seconds=1.5))
    clock.advance(timedelta(hours=1))
    assert clock.now() == START + timedelta(hours=1, seconds=1.5)
    assert clock.monotonic() == pytest.approx(3601.5)


def test_fake_clock_default_start_is_aware_utc() -> None:
    now = FakeClock().now()
    assert now.tzinfo is not None and now.utcoffset() == timedelta(0)


def test_fake_clock_refuses_a_naive_start() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        FakeClock(datetime(2026, 1, 1))


def test_fake_clock_set_refuses_a_naive_datetime() -> None:
    clock = FakeClock(START)
    with pytest.raises(ValueError, match="timezone-aware"):
        clock.set(datetime(2030, 1, 1))
    assert clock.now() == START


def test_fake_clock_refuses_to_advance_backwards() -> None:
    clock = FakeClock(START)
    with pytest.raises(ValueError, match="backwards"):
        clock.advance(timedelta(seconds=-1))
    assert clock.now() == START
    assert clock.monotonic() == 0.0


def test_fake_clock_set_jumps_and_keeps_monotonic() -> None:
    clock = FakeClock(START)
    clock.advance(timedelta(seconds=10))
    clock.set(datetime(2031, 6, 30, tzinfo=timezone(timedelta(hours=2))))
    assert clock.now() == datetime(2031, 6, 30, tzinfo=timezone(timedelta(hours=2)))
    assert clock.monotonic() == 10.0  # a wall-clock jump does not move uptime


def test_system_clock_is_aware_utc_and_current() -> None:
    clock: Clock = SystemClock()
    now = clock.now()
    assert now.tzinfo is not None
    assert now.utcoffset() == timedelta(0)
    assert abs(now.timestamp() - time.time()) < 5


def test_system_clock_monotonic_never_goes_backwards() -> None:
    clock = SystemClock()
    readings = [clock.monotonic() for _ in range(1000)]
    assert readings == sorted(readings)


def test_a_file_clock_believes_only_root_s_file_that_nobody_else_may_write(tmp_path: Path) -> None:
    from agent.clock import FileClock, check_clock_file

    folder = tmp_path / "clock"
    folder.mkdir(mode=0o755)
    clock_path = folder / "now"
    clock_path.write_text("2031-01-02T03:00:00+00:00\n")
    clock_path.chmod(0o644)
    clock = FileClock(clock_path)
    assert clock.now() == datetime(2031, 1, 2, 3, 0, tzinfo=UTC)
    check_clock_file(clock_path)
    clock_path.chmod(0o666)  # anyone may write it now: the last instant believed stands
    clock_path.write_text("2099-01-01T00:00:00+00:00\n")
    assert clock.now() == datetime(2031, 1, 2, 3, 0, tzinfo=UTC)
    with pytest.raises(ValueError):
        check_clock_file(clock_path)
    clock_path.chmod(0o644)
    assert clock.now() == datetime(2099, 1, 1, 0, 0, tzinfo=UTC)
    os.chown(clock_path, 65534, 65534)  # another's file: not believed
    clock_path.write_text("2100-01-01T00:00:00+00:00\n")
    assert clock.now() == datetime(2099, 1, 1, 0, 0, tzinfo=UTC)
    os.chown(clock_path, 0, 0)
    folder.chmod(0o777)  # a folder others may write: refused at start
    with pytest.raises(ValueError):
        check_clock_file(clock_path)
    folder.chmod(0o755)
    clock_path.unlink()
    assert abs(clock.now() - datetime.now(UTC)).total_seconds() < 60  # wall-clock: absent file
