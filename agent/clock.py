"""Time, injected.

Every decision takes the time as a value; only the shell asks a ``Clock``. A test walks a
project from its start to years after its end with a ``FakeClock`` that jumps, instead of
sleeping or patching ``datetime``.
"""

from __future__ import annotations

import contextlib
import os
import stat
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, timezone-aware, in UTC."""
        ...

    def monotonic(self) -> float:
        """Seconds from an arbitrary origin that never go backwards (for uptime and timeouts)."""
        ...


class SystemClock:
    """The real clock; the only place Vokter reads the wall clock."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    def monotonic(self) -> float:
        return time.monotonic()


class FileClock:
    """For drills and tests of a project's end: the date is what an operator wrote in a file.

    The daemon's whole notion of now (the decisions, the audit trail's times) is the ISO 8601
    instant in the file, with its offset (``2031-01-02T03:00:00+00:00``); the real clock when
    the file is absent or empty. The file is read again whenever it changes, so a test walks a
    running daemon through years by rewriting it. Whoever sets the clock decides when data is
    disposed of, so the file and its folder must be root's and writable by root alone: checked
    at start (:func:`check_clock_file`, the daemon refuses to start) and at every read (a file
    that fails is not believed: the last instant believed stands). Never configured in
    production; the daemon's start in the audit trail names the file.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._seen: tuple[int, ...] | None = None
        self._instant: datetime | None = None

    def now(self) -> datetime:
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        except FileNotFoundError:
            self._seen, self._instant = None, None
            return datetime.now(UTC)
        except OSError:  # a symlink put in its place, a folder: not believed
            return self._instant or datetime.now(UTC)
        try:
            status = os.fstat(fd)
            stamp = (status.st_ino, status.st_mtime_ns, status.st_ctime_ns, status.st_size)
            if stamp != self._seen and _safe(status):
                self._seen = stamp
                text = os.read(fd, 256).decode("utf-8", "replace").strip()
                # A half-written or mistyped file: the last good instant stands.
                with contextlib.suppress(ValueError):
                    self._instant = _instant(text) if text else None
        finally:
            os.close(fd)
        return self._instant if self._instant is not None else datetime.now(UTC)

    def monotonic(self) -> float:
        return time.monotonic()


def _safe(status: os.stat_result) -> bool:
    return stat.S_ISREG(status.st_mode) and status.st_uid == 0 and not status.st_mode & 0o022


def _instant(text: str) -> datetime:
    when = datetime.fromisoformat(text)
    if when.tzinfo is None:
        raise ValueError(f"the clock file says {text!r}, without an offset")
    return when.astimezone(UTC)


def check_clock_file(path: Path) -> None:
    """Refuse a clock file others could set: the file (when it exists) and its folder must be
    root's and writable by root alone; a file that exists must hold an instant or nothing."""
    folder = os.stat(path.parent)
    if folder.st_uid != 0 or folder.st_mode & 0o022:
        raise ValueError(f"{path.parent}: a clock file's folder must be root's and writable by "
                         "root alone")
    try:
        status = os.lstat(path)
    except FileNotFoundError:
        return
    if not _safe(status):
        raise ValueError(f"{path}: a clock file must be a regular file of root's that no one "
                         "else may write")
    text = path.read_text(encoding="utf-8").strip()
    if text:
        _instant(text)


@dataclass
class FakeClock:
    """A clock that stands still until told to move; for tests and for walking timelines."""

    current: datetime = field(default_factory=lambda: datetime(2026, 1, 1, tzinfo=UTC))
    ticks: float = 0.0

    def __post_init__(self) -> None:
        if self.current.tzinfo is None:
            raise ValueError("FakeClock needs a timezone-aware datetime")

    def now(self) -> datetime:
        return self.current

    def monotonic(self) -> float:
        return self.ticks

    def advance(self, delta: timedelta) -> None:
        if delta < timedelta(0):
            raise ValueError("a clock does not go backwards; use set() to jump")
        self.current += delta
        self.ticks += delta.total_seconds()

    def set(self, when: datetime) -> None:
        if when.tzinfo is None:
            raise ValueError("FakeClock needs a timezone-aware datetime")
        self.current = when
