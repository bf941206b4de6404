"""The journal of a data zone's anonymisation: one JSON line per file's outcome, fsync'd before
the next file is started, so a run killed at any point is resumed by the next.

Why a file of its own (``anonymise.jsonl``), not the removal's journal: the two runs may share
the disposal's journal folder, and each must read back only its own records. The first line
names the data zone, so a journal is never applied to another zone. A record is either an
outcome or, just before an anonymised version is renamed over its original, a pending outcome
naming the new file's SHA-256 (see :mod:`agent.lifecycle.anonymise_run`). A line torn by a
crash mid-write is cut off when the journal is opened again: that file is simply redone.

The journal names files of the project, so it is made 0600, opened without following a
symlink, in a folder made 0700 (:func:`agent.lifecycle.removal_journal.open_journal_dir`), and
locked for the run: a second run on the same journal is refused instead of racing the first.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from agent.errors import Failed
from agent.lifecycle.removal_journal import open_journal_dir

NAME = "anonymise.jsonl"
KIND = "vokter-anonymise"
VERSION = 1
_FLAGS = os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW | os.O_CLOEXEC


class Journal:
    """The records on file (``done`` and ``pending``, by path, in the order recorded) and the
    way to add one."""

    def __init__(self, fd: int, journal_dir: Path, zone: str) -> None:
        self._fd = fd
        self._journal_dir = journal_dir
        self.done: dict[str, dict[str, Any]] = {}
        self.pending: dict[str, dict[str, Any]] = {}
        self._load(zone)

    @classmethod
    @contextmanager
    def open(cls, journal_dir: Path, zone: str) -> Iterator[Journal]:
        dir_fd = open_journal_dir(journal_dir)
        try:
            fd = os.open(NAME, _FLAGS, 0o600, dir_fd=dir_fd)
            try:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    raise Failed(f"the anonymisation journalled in {journal_dir} is already "
                                 "running", hint="wait for it to finish") from None
                journal = cls(fd, journal_dir, zone)
                os.fsync(dir_fd)  # the journal's name is durable before anything is done
                yield journal
            finally:
                os.close(fd)  # drops the lock
        finally:
            os.close(dir_fd)

    def record(self, outcome: dict[str, Any], *, pending: bool = False) -> None:
        """Append the outcome (a JSON object with a "path") and fsync it."""
        self._append({"pending" if pending else "outcome": outcome})
        if pending:
            self.pending[outcome["path"]] = outcome
        else:
            self.done[outcome["path"]] = outcome
            self.pending.pop(outcome["path"], None)

    def _append(self, record: dict[str, Any]) -> None:
        line = (json.dumps(record) + "\n").encode("ascii")
        view = memoryview(line)
        while view:
            view = view[os.write(self._fd, view):]
        os.fsync(self._fd)

    def _load(self, zone: str) -> None:
        data = _read_all(self._fd)
        if not data:
            self._append({"journal": KIND, "version": VERSION, "zone": zone})
            return
        lines = data.split(b"\n")
        if lines[-1]:  # torn by a crash mid-write: cut off, that file is redone
            os.ftruncate(self._fd, len(data) - len(lines[-1]))
            os.fsync(self._fd)
        lines = lines[:-1]
        try:
            head = json.loads(lines[0]) if lines else None
        except ValueError:
            head = None
        if not isinstance(head, dict) or head.get("journal") != KIND \
                or head.get("version") != VERSION:
            raise self._damaged("it has no known header")
        if head.get("zone") != zone:
            raise Failed(f"the anonymisation journal in {self._journal_dir} is for the zone "
                         f"{head.get('zone')}, not {zone}",
                         hint="use the journal folder of this project's disposal")
        for number, line in enumerate(lines[1:], start=2):
            try:
                record = json.loads(line)
            except ValueError:
                raise self._damaged(f"line {number} is not a record") from None
            if not isinstance(record, dict) or len(record) != 1:
                raise self._damaged(f"line {number} is not a record")
            kind, outcome = next(iter(record.items()))
            if kind not in ("outcome", "pending") or not isinstance(outcome, dict) \
                    or not isinstance(outcome.get("path"), str):
                raise self._damaged(f"line {number} is not a record")
            if kind == "outcome":
                self.done[outcome["path"]] = outcome
                self.pending.pop(outcome["path"], None)
            else:
                self.pending[outcome["path"]] = outcome

    def _damaged(self, what: str) -> Failed:
        return Failed(f"the anonymisation journal in {self._journal_dir} is damaged: {what}",
                      hint="nothing more is done on its account until it is looked into")


def _read_all(fd: int) -> bytes:
    chunks = []
    offset = 0
    while chunk := os.pread(fd, 1 << 20, offset):
        chunks.append(chunk)
        offset += len(chunk)
    return b"".join(chunks)
