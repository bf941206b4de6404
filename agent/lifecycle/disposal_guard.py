"""What keeps a disposal safe to run: one runner at a time, a hold seen before the next file,
no file system mounted in the data zone, and only the daemon that began a run resumes it.

Why apart from the run: these are the run's preconditions and guards, each small, each with a
reason of its own; the run (:mod:`agent.lifecycle.disposal`) reads as the steps it takes.
"""

from __future__ import annotations

import hashlib
import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import text

from agent.lifecycle.transitions import held
from agent.services import Services

#: How often, at most, a running removal asks the store whether a hold was placed elsewhere.
HOLD_CHECK_SECONDS = 0.5

_LOCAL_CLAIMS: set[str] = set()
_LOCAL_GUARD = threading.Lock()


def daemon_id(services: Services) -> str:
    """This daemon, as the disposal events name it: its host and its state directory (where
    its journals and certificates are kept)."""
    return f"{socket.gethostname()}:{services.config.state_dir}"


@contextmanager
def claim(services: Services, project_id: str) -> Iterator[bool]:
    """Whether this daemon may run the project's disposal now; held for the whole run."""
    if services.store.backend == "postgresql":
        key = int.from_bytes(hashlib.sha256(f"vokter-disposal:{project_id}".encode()).digest()[:8],
                             "big", signed=True)
        # AUTOCOMMIT: a session idle in a transaction for the whole run could be ended by
        # the server (idle_in_transaction_session_timeout), and the lock with it.
        engine = services.store.engine.execution_options(isolation_level="AUTOCOMMIT")
        with engine.connect() as connection:
            got = bool(connection.execute(text("SELECT pg_try_advisory_lock(:key)"),
                                          {"key": key}).scalar())
            try:
                yield got
            finally:
                if got:
                    connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": key})
        return
    with _LOCAL_GUARD:
        got = project_id not in _LOCAL_CLAIMS
        _LOCAL_CLAIMS.add(project_id)
    try:
        yield got
    finally:
        if got:
            with _LOCAL_GUARD:
                _LOCAL_CLAIMS.discard(project_id)


#: Projects a hold was placed on through this daemon: the run stops before its next file.
_HELD_HERE: set[str] = set()


def hold_flag_clear(project_id: str) -> None:
    """At a run's start, when the store says no hold stands (it was released)."""
    with _LOCAL_GUARD:
        _HELD_HERE.discard(project_id)


def hold_placed(project_id: str) -> None:
    """Called by ``hold place`` once the hold is committed, so a run in this daemon stops at
    once; a hold placed through another daemon is seen within ``HOLD_CHECK_SECONDS``."""
    with _LOCAL_GUARD:
        _HELD_HERE.add(project_id)


class HoldWatch:
    """``should_stop`` for the removal: a hold placed through this daemon stops it before the
    next file; the store is asked at most every half second (holds placed elsewhere), since
    this is called before every file, from the removal's threads."""

    def __init__(self, services: Services, project_id: str) -> None:
        self.services = services
        self.project_id = project_id
        self._checked = 0.0
        self._held = False
        self._lock = threading.Lock()

    def __call__(self) -> bool:
        with _LOCAL_GUARD:
            if self.project_id in _HELD_HERE:
                self._held = True
        with self._lock:
            now = time.monotonic()
            if not self._held and now - self._checked >= HOLD_CHECK_SECONDS:
                self._checked = now
                with self.services.store.read() as session:
                    self._held = held(session, self.project_id)
            return self._held


def mount_points(zone: Path) -> list[str]:
    """Mount points inside the zone (bind mounts of the same file system included), from the
    kernel's mount table: the anonymisation does not enter them, so their files would be
    neither judged nor deleted; the run waits until they are unmounted."""
    prefix = os.path.realpath(zone).rstrip("/") + "/"
    found = []
    with open("/proc/self/mountinfo", encoding="utf-8", errors="replace") as table:
        for line in table:
            fields = line.split(" ")
            if len(fields) > 4:
                point = _unescape(fields[4])
                if point.startswith(prefix):
                    found.append(point[len(prefix):])
    return sorted(found)


def _unescape(field: str) -> str:
    """mountinfo writes space, tab, newline and backslash as octal escapes."""
    for code, char in (("\\040", " "), ("\\011", "\t"), ("\\012", "\n"), ("\\134", "\\")):
        field = field.replace(code, char)
    return field
