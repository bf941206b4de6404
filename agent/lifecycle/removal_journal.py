"""The journal of a removal: what was planned and which items are done, in two JSON-lines files.

Why a journal at all: a disposal must survive SIGKILL, a power cut or a reboot at any point and
then finish, and the certificate must list every file as it was before anything was removed.
So the plan is written in full, fsync'd and renamed into place before the first removal (a crash
while planning leaves no plan, and planning starts over: nothing has been removed yet); after
that, the plan is read back and never taken again, whatever the zones hold by then.

``done.jsonl`` grows by one line per finished item and is fsync'd every so many items: a crash
loses at most those lines, and redoing an item whose removal was lost from the journal finds it
gone, which counts as done. A torn last line (a crash mid-write) is ignored for the same reason.

The journal names every file of a project, so it is made 0600 in a folder made 0700, opened
without following symlinks; whoever runs the removal deletes it when the certificate is out.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import IO, Any

from agent.errors import Failed

JOURNAL_KIND = "vokter-removal"
JOURNAL_VERSION = 1
PLAN = "plan.jsonl"
DONE = "done.jsonl"
_PLAN_TEMPORARY = ".plan.jsonl.tmp"
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_FLAGS = os.O_NOFOLLOW | os.O_CLOEXEC


def open_journal_dir(journal_dir: Path) -> int:
    """The journal folder's descriptor, the folder made 0700 if it is new. A symlink in its
    place is refused: the journal is written as root and must land where it was asked to."""
    with suppress(FileExistsError):
        os.mkdir(journal_dir, 0o700)
    try:
        return os.open(journal_dir, _DIR_FLAGS)
    except OSError as error:
        raise Failed(f"the removal journal folder {journal_dir} cannot be opened: "
                     f"{error.strerror}", hint="it must be a folder, not a symlink") from error


@contextmanager
def exclusive(dir_fd: int, journal_dir: Path) -> Iterator[None]:
    """One removal per journal at a time: a second one on the same journal (another thread, a
    run started twice) is refused instead of racing the first over the same items. The kernel
    drops the lock when its holder dies, so a killed run never blocks the next."""
    try:
        fcntl.flock(dir_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError as error:
        raise Failed(f"the removal journalled in {journal_dir} is already running",
                     hint="wait for it to finish") from error
    try:
        yield
    finally:
        fcntl.flock(dir_fd, fcntl.LOCK_UN)


def header(zones: list[str], hash_files: bool) -> dict[str, Any]:
    return {"journal": JOURNAL_KIND, "version": JOURNAL_VERSION, "zones": zones,
            "hash_files": hash_files}


def write_plan(dir_fd: int, head: dict[str, Any], rows: Iterable[dict[str, Any]]) -> int:
    """Write the header, every row and a closing count, durably, then rename the file into
    place; returns the number of rows. A stale ``done.jsonl`` (from a journal whose plan was
    lost) is removed first: its line numbers would mean other items."""
    _unlink_if_present(DONE, dir_fd)
    fd = os.open(_PLAN_TEMPORARY, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | _FILE_FLAGS, 0o600,
                 dir_fd=dir_fd)
    count = 0
    try:
        with os.fdopen(fd, "w", encoding="ascii", buffering=1 << 20) as stream:
            stream.write(json.dumps(head) + "\n")
            for row in rows:
                stream.write(json.dumps(row) + "\n")
                count += 1
            stream.write(json.dumps({"items": count}) + "\n")
            stream.flush()
            os.fsync(stream.fileno())
    except BaseException:
        _unlink_if_present(_PLAN_TEMPORARY, dir_fd)  # the inventory failed: no plan at all
        raise
    os.rename(_PLAN_TEMPORARY, PLAN, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    os.fsync(dir_fd)
    return count


def read_plan(dir_fd: int, journal_dir: Path) -> tuple[dict[str, Any], list[dict[str, Any]]] | None:
    """The header and rows of the plan on record, or None when there is none yet. A plan that
    does not end in its own count was not written by this module (it is renamed into place only
    when whole), so it is refused rather than half trusted."""
    try:
        fd = os.open(PLAN, os.O_RDONLY | _FILE_FLAGS, dir_fd=dir_fd)
    except FileNotFoundError:
        return None
    with os.fdopen(fd, encoding="ascii") as stream:
        lines = stream.read().splitlines()
    try:
        head = json.loads(lines[0])
        rows = [json.loads(line) for line in lines[1:-1]]
        closing = json.loads(lines[-1])
    except (IndexError, ValueError) as error:
        raise _damaged(journal_dir, "its plan cannot be read") from error
    if (not isinstance(head, dict) or head.get("journal") != JOURNAL_KIND
            or head.get("version") != JOURNAL_VERSION):
        raise _damaged(journal_dir, "its plan has no known header")
    if closing != {"items": len(rows)}:
        raise _damaged(journal_dir, "its plan is incomplete")
    return head, rows


def read_done(dir_fd: int, journal_dir: Path) -> set[int]:
    """The indexes of the items recorded as done. Only the last line may be torn."""
    try:
        fd = os.open(DONE, os.O_RDONLY | _FILE_FLAGS, dir_fd=dir_fd)
    except FileNotFoundError:
        return set()
    with os.fdopen(fd, encoding="ascii", errors="replace") as stream:
        lines = stream.read().split("\n")
    done: set[int] = set()
    last = len(lines) - 1
    for number, line in enumerate(lines):
        if not line:
            continue
        try:
            done.add(int(json.loads(line)["done"]))
        except (ValueError, KeyError, TypeError) as error:
            if number == last:
                break  # torn by a crash mid-write: that item is simply redone
            raise _damaged(journal_dir, f"line {number + 1} of its progress is not a record") \
                from error
    return done


class DoneLog:
    """Appends "done" lines, fsync'd every ``sync_every`` items and on close."""

    def __init__(self, dir_fd: int, sync_every: int) -> None:
        fd = os.open(DONE, os.O_WRONLY | os.O_CREAT | os.O_APPEND | _FILE_FLAGS, 0o600,
                     dir_fd=dir_fd)
        self._stream: IO[str] = os.fdopen(fd, "a", encoding="ascii", buffering=1 << 16)
        self._sync_every = max(1, sync_every)
        self._pending = 0
        self._dir_fd = dir_fd
        self._first_sync = True

    def done(self, index: int) -> None:
        self._stream.write(f'{{"done": {index}}}\n')
        self._pending += 1
        if self._pending >= self._sync_every:
            self.sync()

    def sync(self) -> None:
        self._stream.flush()
        os.fsync(self._stream.fileno())
        if self._first_sync:
            os.fsync(self._dir_fd)  # the file's name is durable too, once
            self._first_sync = False
        self._pending = 0

    def close(self) -> None:
        try:
            self.sync()
        finally:
            self._stream.close()


def discard(dir_fd: int) -> None:
    """Remove the journal's files (the folder stays: it was given, not made, by the caller)."""
    for name in (DONE, PLAN, _PLAN_TEMPORARY):
        _unlink_if_present(name, dir_fd)
    os.fsync(dir_fd)


def _unlink_if_present(name: str, dir_fd: int) -> None:
    with suppress(FileNotFoundError):
        os.unlink(name, dir_fd=dir_fd)


def _damaged(journal_dir: Path, what: str) -> Failed:
    return Failed(f"the removal journal in {journal_dir} is damaged: {what}",
                  hint="nothing more is removed on its account until it is looked into")
