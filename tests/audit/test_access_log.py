"""The access log's pure core (A5): repeated opens merge per window, gaps are named."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from agent.audit.access_log import (
    OPEN_ACTION,
    START_ACTION,
    STOP_ACTION,
    DropTally,
    Gap,
    OpenAggregator,
    OpenSeen,
    gaps_for_projects,
    restart_gaps,
)
from agent.config import parse_config
from agent.errors import ConfigError

T0 = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
MINUTE = timedelta(seconds=60)


def seen(seconds: float = 0, *, uid: int = 1001, program: str = "/usr/bin/cat",
         path: str = "/srv/vokter/p1/data/a.csv", pid: int | None = 500) -> OpenSeen:
    return OpenSeen(time=T0 + timedelta(seconds=seconds), uid=uid, user=f"u{uid}", pid=pid,
                    program=program, path=path, project="p1", zone="data", source="fanotify")


def test_a5_one_program_reading_one_file_many_times_in_a_window_is_one_record() -> None:
    merged = OpenAggregator(MINUTE)
    for second in range(10):
        merged.add(replace(seen(second * 5), pid=500 + second))
    assert merged.flush(T0 + timedelta(seconds=59)) == []
    [record] = merged.flush(T0 + MINUTE)
    assert (record.count, record.first, record.last, record.pid) == (
        10, T0, T0 + timedelta(seconds=45), 500)
    assert record.details() == {
        "pid": 500, "program": "/usr/bin/cat", "count": 10,
        "first": "2026-11-23T12:00:00.000000Z", "last": "2026-11-23T12:00:45.000000Z",
        "source": "fanotify", "zone": "data"}
    assert merged.flush(None) == []


def test_a5_another_user_program_or_file_is_another_record() -> None:
    merged = OpenAggregator(MINUTE)
    merged.add_all([seen(), seen(1, uid=1002), seen(2, program="/usr/bin/R"),
                    seen(3, path="/srv/vokter/p1/data/b.csv"), seen(4)])
    records = merged.flush(None)
    assert [(r.uid, r.program, r.path[-5:], r.count) for r in records] == [
        (1001, "/usr/bin/cat", "a.csv", 2),
        (1002, "/usr/bin/cat", "a.csv", 1),
        (1001, "/usr/bin/R", "a.csv", 1),
        (1001, "/usr/bin/cat", "b.csv", 1),
    ]


def test_a5_an_open_after_the_window_starts_the_next_record() -> None:
    merged = OpenAggregator(MINUTE)
    merged.add_all([seen(0), seen(30), seen(60), seen(61)])
    records = merged.flush(None)
    assert [(r.count, r.first, r.last) for r in records] == [
        (2, T0, T0 + timedelta(seconds=30)),
        (2, T0 + MINUTE, T0 + timedelta(seconds=61))]


def test_a5_a_window_closed_by_a_later_open_is_handed_out_at_the_next_flush() -> None:
    merged = OpenAggregator(MINUTE)
    merged.add_all([seen(0), seen(70)])
    [first] = merged.flush(T0 + timedelta(seconds=70))
    assert (first.count, first.first) == (1, T0)
    assert merged.pending_opens == 1
    [second] = merged.flush(T0 + timedelta(seconds=130))
    assert second.first == T0 + timedelta(seconds=70)


def test_a5_every_open_comes_out_exactly_once_whatever_the_flushes() -> None:
    merged = OpenAggregator(timedelta(seconds=7), max_windows=3)
    opens = [seen(i * 1.5, uid=1000 + i % 4, path=f"/z/{i % 5}") for i in range(200)]
    total = 0
    for index, one in enumerate(opens):
        merged.add(one)
        if index % 13 == 0:
            total += sum(r.count for r in merged.flush(one.time))
    total += sum(r.count for r in merged.flush(None))
    assert total == len(opens)
    assert merged.pending_opens == 0


def test_a5_too_many_distinct_files_close_the_oldest_windows_early() -> None:
    merged = OpenAggregator(MINUTE, max_windows=2)
    merged.add_all([seen(0, path="/z/a"), seen(1, path="/z/b"), seen(2, path="/z/c")])
    [early] = merged.flush(T0 + timedelta(seconds=2))
    assert early.path == "/z/a"
    assert [r.path for r in merged.flush(None)] == ["/z/b", "/z/c"]


def test_a5_a_window_must_be_longer_than_zero() -> None:
    with pytest.raises(ValueError, match="longer than zero"):
        OpenAggregator(timedelta(0))


def test_a5_dropped_opens_become_one_overflow_gap_per_project_with_the_count() -> None:
    tally = DropTally()
    tally.add("p2", T0 + timedelta(seconds=3))
    tally.add("p1", T0 + timedelta(seconds=1))
    tally.add("p1", T0, count=4)
    assert tally.total == 6
    gaps = tally.take("overflow", "fanotify")
    assert gaps == [Gap("overflow", T0, T0 + timedelta(seconds=1), "fanotify", "p1", 5),
                    Gap("overflow", T0 + timedelta(seconds=3), T0 + timedelta(seconds=3),
                        "fanotify", "p2", 1)]
    assert gaps[0].details() == {"reason": "overflow", "dropped": 5,
                                 "from": "2026-11-23T12:00:00.000000Z",
                                 "to": "2026-11-23T12:00:01.000000Z", "source": "fanotify"}
    assert tally.take("overflow", "fanotify") == [] and tally.total == 0


def test_a5_a_gap_without_projects_is_marked_for_the_whole_trail() -> None:
    assert gaps_for_projects("kernel_overflow", T0, T0, "inotify", []) == [
        Gap("kernel_overflow", T0, T0, "inotify", None, None)]
    assert [g.project for g in gaps_for_projects("restart", T0, T0, None, ["p2", "p1", "p2"])
            ] == ["p1", "p2"]


def test_a5_a_start_after_a_clean_stop_marks_a_restart_gap_from_the_stop() -> None:
    stopped = T0 - timedelta(hours=1)
    [gap] = restart_gaps((STOP_ACTION, stopped), stopped, T0, "fanotify", ["p1"])
    assert (gap.reason, gap.since, gap.until, gap.project) == ("restart", stopped, T0, "p1")


def test_a5_a_start_after_a_run_that_did_not_stop_its_log_marks_an_unclean_stop() -> None:
    last_open = T0 - timedelta(minutes=5)
    for action in (OPEN_ACTION, START_ACTION):
        # A daemon.stop after the last open does not help: the merged opens were not flushed.
        [gap] = restart_gaps((action, last_open), T0 - timedelta(minutes=1), T0, "inotify",
                             ["p1"])
        assert (gap.reason, gap.since, gap.until) == ("unclean_stop", last_open, T0)


def test_a5_a_trail_from_before_the_access_log_gaps_from_the_last_daemon_stop() -> None:
    stopped = T0 - timedelta(days=2)
    [gap] = restart_gaps(None, stopped, T0, "fanotify", [])
    assert (gap.reason, gap.since, gap.project) == ("restart", stopped, None)


def test_a5_a_first_start_has_no_gap_to_mark() -> None:
    assert restart_gaps(None, None, T0, "fanotify", ["p1"]) == []


def test_a5_the_access_log_source_is_a_config_key_of_three_values() -> None:
    assert parse_config("").access_log_source == "auto"
    assert parse_config('access_log_source = "inotify"').access_log_source == "inotify"
    with pytest.raises(ConfigError, match="access_log_source: must be one of auto, fanotify, "
                                          "inotify"):
        parse_config('access_log_source = "audit"')
