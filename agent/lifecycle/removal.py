"""Removing every file of a project's zones for good (L2), so that nothing outside them is
touched and a killed run resumes where it stopped.

Why descriptors and not paths: a zone belongs to people who may still hold a shell in it. A path
is looked up again at every call, so a folder swapped for a symlink between two calls would
send a path-based ``rm`` somewhere else entirely. Here every folder is opened relative to its
parent's descriptor without following symlinks or crossing mount points (see
:func:`agent.lifecycle.removal_inventory.open_folder`), and every removal is an ``unlinkat``
relative to the folder that was opened, which never follows the name it removes. A symlink is
an item of its own: it is removed, its target never read or touched. Before each removal the
chain of folders held open is checked against the names in the zone once more, so a folder
moved out of the zone (``mv``) is not chased: its items are reported gone.

What is left to chance: between that check and the ``unlinkat`` (microseconds), a folder can
still be renamed; the removal then happens in the moved folder, to a name the plan holds, as it
would for ``rm -rf`` (fts) too. Zone roots themselves are the enclave's, not users'.
"""

from __future__ import annotations

import errno
import os
import threading
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.audit.redact import redact_identity_numbers
from agent.errors import Failed
from agent.lifecycle import removal_journal as journal
from agent.lifecycle.removal_inventory import (
    DIR,
    NOT_A_FOLDER,
    SYMLINK,
    Item,
    inventory,
    kind_of,
    open_folder,
    open_zone_root,
)

__all__ = ["MAX_ERRORS", "Item", "Removal", "RemovalReport", "inventory"]


@dataclass(frozen=True)
class RemovalReport:
    """What one ``run()`` did. ``removed`` and ``gone`` count this run only; ``done_before``
    counts the items an earlier, interrupted run had finished (the plan's ``items`` are
    ``done_before + removed + gone`` once nothing failed and nothing stopped it)."""

    items: int
    removed: int
    gone: int
    errors: tuple[str, ...]
    stopped: bool
    bytes: int
    done_before: int = 0
    #: Folders found replaced (by a symlink or something else) during the run: someone raced
    #: the removal. Items below them were not chased and count as gone.
    swapped: tuple[str, ...] = ()


# --- the removal ------------------------------------------------------------------------------

_REMOVED, _GONE, _FAILED = "removed", "gone", "failed"
MAX_ERRORS = 1000


class _Walker:
    """Reaches each item's folder from its zone root, one component at a time, keeping the
    chain of folders open between items (consecutive items share it) and checking it against
    the zone before every use."""

    def __init__(self) -> None:
        self.errors: list[str] = []
        self.swapped: list[str] = []
        self._broken_zones: set[str] = set()
        self._seen: set[str] = set()
        self._zone: str | None = None
        self._root: int | None = None
        self._chain: list[tuple[str, int, tuple[int, int]]] = []

    def remove(self, item: Item) -> str:
        *folders, name = item.path.split("/")
        folder = self._folder(item.zone, folders)
        if isinstance(folder, str):
            return folder
        try:
            if item.kind == DIR:
                os.rmdir(name, dir_fd=folder)
            else:
                os.unlink(name, dir_fd=folder)  # unlinkat(2): the name itself, never its target
            return _REMOVED
        except FileNotFoundError:
            return _GONE
        except OSError as error:
            if item.kind == DIR and error.errno == errno.ENOTDIR:
                return self._replaced_folder(item, folder, name)
            return self._fail(item.zone, item.path, error.strerror or str(error))

    def _replaced_folder(self, item: Item, folder: int, name: str) -> str:
        """The folder itself is something else now. A symlink goes, as a link; anything else
        was not planned and is left for verify() to show."""
        try:
            kind = kind_of(os.stat(name, dir_fd=folder, follow_symlinks=False).st_mode)
            if kind == SYMLINK:
                os.unlink(name, dir_fd=folder)
                self._note_swapped(item.zone, item.path)
                return _REMOVED
        except FileNotFoundError:
            return _GONE
        except OSError as error:
            return self._fail(item.zone, item.path, error.strerror or str(error))
        return self._fail(item.zone, item.path, f"no longer a folder (a {kind} now); left alone")

    def _folder(self, zone: str, names: list[str]) -> int | str:
        if zone != self._zone:
            self._enter(zone)
        if self._root is None:
            return _FAILED if zone in self._broken_zones else _GONE
        chain = self._chain
        keep = 0
        limit = min(len(chain), len(names))
        while keep < limit and chain[keep][0] == names[keep]:
            keep += 1
        for level in range(keep):  # still where they were? a folder moved out is not chased
            name, _, identity = chain[level]
            parent = self._root if level == 0 else chain[level - 1][1]
            try:
                info = os.stat(name, dir_fd=parent, follow_symlinks=False)
            except OSError:
                keep = level
                break
            if (info.st_dev, info.st_ino) != identity:
                keep = level
                break
        self._close_from(keep)
        for level in range(keep, len(names)):
            parent = self._root if level == 0 else chain[level - 1][1]
            try:
                fd = open_folder(names[level], parent)
            except OSError as error:
                path = "/".join(names[:level + 1])
                if error.errno == errno.ENOENT:
                    return _GONE
                if error.errno in NOT_A_FOLDER:
                    self._note_swapped(zone, path)
                    return _GONE
                if error.errno == errno.EXDEV:
                    return self._fail(zone, path, "a mount point now; not entered")
                return self._fail(zone, path, error.strerror or str(error))
            info = os.fstat(fd)
            chain.append((names[level], fd, (info.st_dev, info.st_ino)))
        return chain[-1][1] if chain else self._root

    def _enter(self, zone: str) -> None:
        self.close()
        self._zone = zone
        try:
            self._root = open_zone_root(zone)
        except Failed as error:
            self._broken_zones.add(zone)
            self._fail(zone, "", error.message)

    def _note_swapped(self, zone: str, path: str) -> None:
        text = redact_identity_numbers(f"{zone}/{path}")
        if text not in self.swapped:
            self.swapped.append(text)

    def _fail(self, zone: str, path: str, why: str) -> str:
        """Record a failure once: a zone or folder that cannot be opened is one error, not one
        per item in it. The item stays undone, for the next run to try again."""
        where = f"{zone}/{path}" if path else zone
        text = redact_identity_numbers(f"{where}: {why}")
        if text not in self._seen:
            self._seen.add(text)
            self.errors.append(text)
        return _FAILED

    def _close_from(self, level: int) -> None:
        while len(self._chain) > level:
            os.close(self._chain.pop()[1])

    def close(self) -> None:
        self._close_from(0)
        if self._root is not None:
            os.close(self._root)
            self._root = None


class Removal:
    """A journalled, resumable removal of one or more zones: plan once, run until done.

    The plan is the inventory taken before anything was removed (it is what the certificate
    lists); it is journalled and, on a resumed run, read back from the journal instead of
    taken again. Errors (EACCES, EBUSY, EROFS, an immutable file...) never stop a run: they
    are collected in the report and the items stay undone for the next run to retry."""

    def __init__(self, journal_dir: Path, zones: Sequence[Path], *, hash_files: bool = True,
                 sync_every: int = 1000) -> None:
        self._journal_dir = Path(journal_dir)
        self._zones = [os.path.abspath(zone) for zone in zones]
        self._hash_files = hash_files
        self._sync_every = sync_every
        self._plan: list[Item] | None = None

    def plan(self) -> list[Item]:
        """The inventory of every zone, written to the journal (fsync'd) before anything is
        removed; on a resumed removal, the inventory the journal holds."""
        with self._journal() as dir_fd:
            return list(self._planned(dir_fd))

    def run(self, *, should_stop: Callable[[], bool] = lambda: False,
            on_item: Callable[[Item], None] = lambda item: None,
            workers: int = 2) -> RemovalReport:
        """Remove what the plan holds and is not done yet: every file, symlink and other entry
        first, by ``workers`` threads a folder at a time (unlinks in different folders run
        side by side in the kernel), then the folders, children before their parents.

        ``should_stop`` is asked before each item (a legal hold placed mid-run, L5): once it
        says stop, no further item is started and the run returns with ``stopped``.
        ``on_item`` is called after each item, never two calls at once. Both are called once
        per item, so they must be cheap."""
        with self._journal() as dir_fd:
            items = self._planned(dir_fd)
            done = journal.read_done(dir_fd, self._journal_dir)
            tally = _Tally(journal.DoneLog(dir_fd, self._sync_every), should_stop, on_item)
            try:
                entries = [(index, item) for index, item in enumerate(items)
                           if item.kind != DIR and index not in done]
                _in_parallel(_by_folder(entries), tally, max(1, workers))
                if not tally.stopped:
                    folders = [(index, item) for index, item in enumerate(items)
                               if item.kind == DIR and index not in done]
                    _in_parallel([folders], tally, 1)
            finally:
                tally.log.close()
        return RemovalReport(items=len(items), removed=tally.removed, gone=tally.gone,
                             errors=tally.error_lines(), stopped=tally.stopped,
                             bytes=tally.bytes,
                             done_before=sum(0 <= index < len(items) for index in done),
                             swapped=tuple(tally.swapped))

    def verify(self) -> list[str]:
        """What is left in the zones, each as its absolute path; [] when every zone is empty."""
        return [f"{item.zone}/{item.path}" for zone in self._zones
                for item in inventory(Path(zone), hash_files=False)]

    def discard_journal(self) -> None:
        """Delete the journal's files once the certificate is out: they name every file."""
        with self._journal() as dir_fd:
            journal.discard(dir_fd)
        self._plan = None

    def _planned(self, dir_fd: int) -> list[Item]:
        if self._plan is not None:
            return self._plan
        recorded = journal.read_plan(dir_fd, self._journal_dir)
        if recorded is None:
            items: list[Item] = []
            rows = (_row(item, index, items) for index, zone in enumerate(self._zones)
                    for item in inventory(Path(zone), hash_files=self._hash_files))
            journal.write_plan(dir_fd, journal.header(self._zones, self._hash_files), rows)
        else:
            head, rows_read = recorded
            if head.get("zones") != self._zones:
                raise Failed(f"the removal journal in {self._journal_dir} is for other zones",
                             hint="use the journal folder of this removal")
            zones = self._zones
            items = [Item(zones[row["zone"]], row["path"], row["kind"], row["size"],
                          row["sha256"]) for row in rows_read]
        self._plan = items
        return items

    @contextmanager
    def _journal(self) -> Iterator[int]:
        dir_fd = journal.open_journal_dir(self._journal_dir)
        try:
            with journal.exclusive(dir_fd, self._journal_dir):
                yield dir_fd
        finally:
            os.close(dir_fd)


class _Tally:
    """What the run's workers did, counted and journalled under one lock."""

    def __init__(self, log: journal.DoneLog, should_stop: Callable[[], bool],
                 on_item: Callable[[Item], None]) -> None:
        self.log = log
        self.removed = self.gone = self.bytes = 0
        self.stopped = False
        self.errors: list[str] = []
        self._errors_seen: set[str] = set()
        self.swapped: list[str] = []
        self._should_stop = should_stop
        self._on_item = on_item
        self._lock = threading.Lock()

    def go_on(self) -> bool:
        if not self.stopped and self._should_stop():
            self.stopped = True
        return not self.stopped

    def record(self, index: int, item: Item, outcome: str) -> None:
        with self._lock:
            if outcome == _REMOVED:
                self.removed += 1
                self.bytes += item.size
            elif outcome == _GONE:
                self.gone += 1
            if outcome != _FAILED:
                self.log.done(index)
            self._on_item(item)

    def merge(self, walker: _Walker) -> None:
        with self._lock:
            for line in walker.errors:
                if line not in self._errors_seen:
                    self._errors_seen.add(line)
                    self.errors.append(line)
            self.swapped.extend(s for s in walker.swapped if s not in self.swapped)

    def error_lines(self) -> tuple[str, ...]:
        """At most MAX_ERRORS lines, the rest counted: a read-only file system fails every
        item, and a hundred thousand lines help no one reading the audit trail."""
        if len(self.errors) <= MAX_ERRORS:
            return tuple(self.errors)
        more = len(self.errors) - MAX_ERRORS
        return (*self.errors[:MAX_ERRORS], f"... and {more} more errors like these")


def _by_folder(entries: list[tuple[int, Item]]) -> list[list[tuple[int, Item]]]:
    """Consecutive entries of one folder, as the inventory lists them, in one group."""
    groups: list[list[tuple[int, Item]]] = []
    last: tuple[str, str] | None = None
    for index, item in entries:
        folder = (item.zone, item.path.rpartition("/")[0])
        if folder != last:
            groups.append([])
            last = folder
        groups[-1].append((index, item))
    return groups


def _in_parallel(groups: list[list[tuple[int, Item]]], tally: _Tally, workers: int) -> None:
    """Work through the groups with ``workers`` threads, each with a walker of its own, taking
    groups from both ends of the list: folders far apart in the tree sit in different block
    groups of the file system, so the threads do not queue on the same bitmaps. An exception
    in one (on_item raising, descriptors running out) stops the others and is raised here."""
    pending = deque(groups)
    failed = threading.Event()

    def work(from_the_end: bool) -> None:
        walker = _Walker()
        try:
            while not failed.is_set():
                try:
                    group = pending.pop() if from_the_end else pending.popleft()
                except IndexError:
                    return
                for index, item in group:
                    if failed.is_set() or not tally.go_on():
                        return
                    tally.record(index, item, walker.remove(item))
        except BaseException:
            failed.set()
            raise
        finally:
            walker.close()
            tally.merge(walker)

    if workers == 1 or len(groups) < 2:
        work(False)
        return
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="removal") as pool:
        futures = [pool.submit(work, number % 2 == 1) for number in range(workers)]
    for future in futures:
        future.result()


def _row(item: Item, zone_index: int, items: list[Item]) -> dict[str, Any]:
    items.append(item)
    return {"zone": zone_index, "path": item.path, "kind": item.kind, "size": item.size,
            "sha256": item.sha256}
