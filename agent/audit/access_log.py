"""The data-access log's pure core (A5): merging repeated opens, and the gap markers.

Why merge: a program that reads one file in a loop would otherwise write an event per open, and
a large trail is one nobody reads. One program (by uid and executable) opening one file within
a window (``policy.audit.access_log_aggregate_seconds``) becomes one record with a count and
the first and last time, which is what an auditor asks: who had this file open, and when.

Why gap markers: a trail without opens must mean that nobody opened anything, not that the log
was not listening. Every time the log could not see or keep opens (its queue was full, the
kernel's queue overflowed, the daemon was stopped or crashed) a marker says so, with the time
span and, where known, how many opens were lost.

Everything here is a value or a function of values; the time is always given, never read.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from agent.audit.chain import format_time

Source = Literal["fanotify", "inotify"]
GapReason = Literal["overflow", "kernel_overflow", "restart", "unclean_stop", "write_failed"]

OPEN_ACTION = "file.open"
GAP_ACTION = "access_log.gap"
START_ACTION = "access_log.start"
STOP_ACTION = "access_log.stop"
#: What the daemon wrote before the access log existed; a clean stop as far as it goes.
DAEMON_STOP_ACTION = "daemon.stop"
#: The events whose latest one says when the access log was last known to be running.
LOG_ACTIONS = (OPEN_ACTION, GAP_ACTION, START_ACTION, STOP_ACTION)

#: What the inotify source records for who opened a file: inotify does not say.
UNKNOWN_UID = -1
UNKNOWN = "unknown"

#: Distinct (uid, program, path) windows kept open at once before the oldest is closed early:
#: a program walking a million files must not hold a million windows in memory.
MAX_OPEN_WINDOWS = 100_000


@dataclass(frozen=True, slots=True)
class OpenSeen:
    """One open of a regular file in a zone, as the source saw it."""

    time: datetime
    uid: int
    user: str
    pid: int | None
    program: str
    path: str
    project: str
    zone: str
    source: Source


@dataclass(frozen=True, slots=True)
class AccessRecord:
    """The opens of one file by one program of one user within one window."""

    uid: int
    user: str
    program: str
    path: str
    project: str
    zone: str
    source: Source
    #: The pid of the first open in the window (later ones may be other processes of the
    #: same program, e.g. a shell loop starting ``cat`` again and again).
    pid: int | None
    count: int
    first: datetime
    last: datetime

    def details(self) -> dict[str, Any]:
        return {
            "pid": self.pid,
            "program": self.program,
            "count": self.count,
            "first": format_time(self.first),
            "last": format_time(self.last),
            "source": self.source,
            "zone": self.zone,
        }


WindowKey = tuple[int, str, str]


@dataclass(slots=True)
class _Window:
    opened: OpenSeen
    count: int
    last: datetime

    def record(self) -> AccessRecord:
        seen = self.opened
        return AccessRecord(seen.uid, seen.user, seen.program, seen.path, seen.project,
                            seen.zone, seen.source, seen.pid, self.count, seen.time, self.last)


class OpenAggregator:
    """Merges opens per (uid, program, path) and window; closed windows come out as records.

    A window starts at the first open of its key and lasts ``window``; an open after that
    starts the next one. ``flush(now)`` hands out every window closed by ``now``;
    ``flush(None)`` hands out everything (at stop: nothing may stay behind).
    """

    def __init__(self, window: timedelta, max_windows: int = MAX_OPEN_WINDOWS) -> None:
        if window <= timedelta(0):
            raise ValueError("an aggregation window is longer than zero")
        self.window = window
        self._max_windows = max_windows
        self._open: dict[WindowKey, _Window] = {}
        self._closed: list[AccessRecord] = []

    @property
    def pending_opens(self) -> int:
        """Opens seen and not yet handed out as records."""
        return (sum(w.count for w in self._open.values())
                + sum(r.count for r in self._closed))

    def add(self, seen: OpenSeen) -> None:
        key = (seen.uid, seen.program, seen.path)
        current = self._open.get(key)
        if current is not None and seen.time - current.opened.time < self.window:
            current.count += 1
            current.last = max(current.last, seen.time)
            return
        if current is not None:
            self._closed.append(self._open.pop(key).record())
        elif len(self._open) >= self._max_windows:
            oldest = next(iter(self._open))
            self._closed.append(self._open.pop(oldest).record())
        self._open[key] = _Window(seen, 1, seen.time)

    def add_all(self, opens: Iterable[OpenSeen]) -> None:
        for seen in opens:
            self.add(seen)

    def flush(self, now: datetime | None) -> list[AccessRecord]:
        records, self._closed = self._closed, []
        for key, window in list(self._open.items()):
            if now is None or now - window.opened.time >= self.window:
                records.append(window.record())
                del self._open[key]
        records.sort(key=lambda r: (r.first, r.path, r.uid, r.program))
        return records


@dataclass(frozen=True, slots=True)
class Gap:
    """A span of time in which opens were, or may have been, missed."""

    reason: GapReason
    since: datetime | None
    until: datetime
    source: Source | None
    project: str | None = None
    #: How many opens were lost, when known (our own queue counts them; the kernel does not).
    dropped: int | None = None

    def details(self) -> dict[str, Any]:
        return {
            "reason": self.reason,
            "dropped": self.dropped,
            "from": None if self.since is None else format_time(self.since),
            "to": format_time(self.until),
            "source": self.source,
        }


@dataclass(slots=True)
class _Drops:
    count: int
    first: datetime
    last: datetime


@dataclass(slots=True)
class DropTally:
    """Opens that found the queue full, per project, until the writer takes them as gaps."""

    _by_project: dict[str, _Drops] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(d.count for d in self._by_project.values())

    def add(self, project: str, when: datetime, count: int = 1,
            until: datetime | None = None) -> None:
        """``count`` opens lost at ``when`` (or over ``when`` to ``until``)."""
        last = when if until is None else until
        drops = self._by_project.get(project)
        if drops is None:
            self._by_project[project] = _Drops(count, when, last)
        else:
            drops.count += count
            drops.first = min(drops.first, when)
            drops.last = max(drops.last, last)

    def take(self, reason: GapReason, source: Source | None) -> list[Gap]:
        taken, self._by_project = self._by_project, {}
        return [Gap(reason, d.first, d.last, source, project, d.count)
                for project, d in sorted(taken.items())]


def gaps_for_projects(reason: GapReason, since: datetime | None, until: datetime,
                      source: Source | None, projects: Iterable[str],
                      dropped: int | None = None) -> list[Gap]:
    """One marker per project, so that each project's own chain (and its export) shows the
    gap; one marker for the whole trail when there are no projects."""
    names = sorted(set(projects))
    if not names:
        return [Gap(reason, since, until, source, None, dropped)]
    return [Gap(reason, since, until, source, name, dropped) for name in names]


def restart_gaps(
    last_logged: tuple[str, datetime] | None,
    last_daemon_stop: datetime | None,
    now: datetime,
    source: Source | None,
    projects: Iterable[str],
) -> list[Gap]:
    """The gap a start leaves: from the previous run's last access-log event to ``now``.

    The previous run stopped cleanly if its last access-log event is ``access_log.stop`` (or,
    for a trail older than the access log, if a ``daemon.stop`` is all there is); otherwise
    it ended without flushing what it had merged, and the marker says ``unclean_stop``. A trail
    with neither had no earlier run, and there is no gap to mark.
    """
    if last_logged is None:
        if last_daemon_stop is None:
            return []
        return gaps_for_projects("restart", last_daemon_stop, now, source, projects)
    action, when = last_logged
    reason: GapReason = "restart" if action == STOP_ACTION else "unclean_stop"
    return gaps_for_projects(reason, when, now, source, projects)
