"""Watching every judged zone for files written and closed, or moved in (S4, S5, S7, D2, D5).

The kernel tells (inotify ``IN_CLOSE_WRITE``, ``IN_MOVED_TO``) when a writer closed a file: the
rules judge a file only then, never while it is being written. A directory moved into a zone
brings files that raised no event of their own: its tree is judged whole. Zones of projects
created while the daemon runs are watched as soon as the access list is published
(``agent.access.zone_inotify`` follows the gate's view). At start, and after the kernel's event
queue overflowed (events were lost), every zone is judged whole.

Two threads do the judging, so a full scan never holds up the files just written: one takes
the files the kernel named, the other the trees and full scans. The reader thread only queues.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from typing import Any

import structlog

from agent.access.plan import ZoneAccess
from agent.access.zone_inotify import IN_CLOSE_WRITE, IN_MOVED_TO, ZoneInotify
from agent.api.dispatch import Caller
from agent.audit.redact import redact_identity_numbers
from agent.services import Services
from agent.storage.scanner import JUDGED_ZONES, StorageRules

log = structlog.get_logger("vokterd.storage")

_ALL = "\0all"


class ClosedFiles(ZoneInotify):
    FILE_MASK = IN_CLOSE_WRITE | IN_MOVED_TO
    THREAD_NAME = "vokterd-storage-inotify"

    def __init__(self, watcher: StorageWatcher) -> None:
        super().__init__(watcher.services.gate_view, on_overflow=watcher.overflowed,
                         on_problem=watcher.problem)
        self._watcher = watcher

    def _file_event(self, path: str, mask: int, zone: ZoneAccess) -> None:
        if zone.kind in JUDGED_ZONES:
            self._watcher.file_closed(path)

    def _tree_arrived(self, path: str) -> None:
        self._watcher.tree_arrived(path)


#: Paths waiting at most: beyond, they are dropped for one full scan, which judges them all.
MAX_PENDING = 100_000


class _Queue:
    """Paths waiting to be judged, each once however often it was named meanwhile; bounded,
    so a flood of new files costs a full scan, never the daemon's memory."""

    def __init__(self) -> None:
        self._items: OrderedDict[str, None] = OrderedDict()
        self._ready = threading.Condition()
        self.closed = False

    def put(self, item: str) -> bool:
        """False when the queue was full: the caller asks for a full scan instead."""
        with self._ready:
            if len(self._items) >= MAX_PENDING and item not in self._items:
                self._items.clear()
                return False
            self._items[item] = None
            self._ready.notify()
            return True

    def get(self) -> str | None:
        with self._ready:
            while not self._items and not self.closed:
                self._ready.wait()
            if self.closed:
                return None
            item, _ = self._items.popitem(last=False)
            return item

    def close(self) -> None:
        with self._ready:
            self.closed = True
            self._ready.notify_all()

    def __len__(self) -> int:
        return len(self._items)


class StorageWatcher:
    def __init__(self, services: Services, caller: Caller) -> None:
        self.services = services
        self.rules = StorageRules(services, caller)
        self._files = _Queue()
        self._bulk = _Queue()
        self._threads: list[threading.Thread] = []
        self._inotify: ClosedFiles | None = None
        self.judged = 0
        self.violations = 0
        self.overflows = 0
        self.full_scans = 0
        self.source = "off"

    # --- life cycle ---------------------------------------------------------------------------

    def start(self) -> None:
        inotify = ClosedFiles(self)
        try:
            inotify.start()
            self._inotify, self.source = inotify, "inotify"
        except OSError as error:
            # Without events the rules still hold at start and on 'vokter scan'.
            self.source = f"off: {error.strerror or error}"
            log.error("storage_watch_unavailable", error=str(error))
        for name, queue in (("files", self._files), ("bulk", self._bulk)):
            thread = threading.Thread(target=self._work, args=(queue,), daemon=True,
                                      name=f"vokterd-storage-{name}")
            thread.start()
            self._threads.append(thread)
        self._bulk.put(_ALL)

    def stop(self) -> None:
        if self._inotify is not None:
            self._inotify.stop()
        self._files.close()
        self._bulk.close()
        for thread in self._threads:
            thread.join(timeout=30)
        self._threads.clear()

    def status(self) -> dict[str, Any]:
        return {"source": self.source, "judged": self.judged, "violations": self.violations,
                "pending": len(self._files) + len(self._bulk), "overflows": self.overflows,
                "full_scans": self.full_scans,
                "watched_directories": 0 if self._inotify is None
                else self._inotify.watched_directories}

    # --- what the kernel says -----------------------------------------------------------------

    def file_closed(self, path: str) -> None:
        if not self._files.put(path):
            log.warning("storage_queue_full", pending=MAX_PENDING)
            self._bulk.put(_ALL)

    def tree_arrived(self, path: str) -> None:
        self._bulk.put(path)

    def overflowed(self) -> None:
        self.overflows += 1
        self._bulk.put(_ALL)

    def problem(self, kind: str, details: dict[str, Any]) -> None:
        log.warning("storage_watch_problem", kind=kind,
                    **{k: redact_identity_numbers(str(v)) for k, v in details.items()})

    # --- judging ------------------------------------------------------------------------------

    def _work(self, queue: _Queue) -> None:
        while (item := queue.get()) is not None:
            try:
                if item == _ALL:
                    self._scan_all()
                elif queue is self._bulk:
                    for path in self.rules.walk(item):
                        self._judge(path)
                else:
                    self._judge(item)
            except Exception:  # a worker never dies: the next file is judged
                log.exception("storage_worker_failed")

    def _judge(self, path: str) -> None:
        judged = self.rules.judge_path(path)
        self.judged += 1
        self.violations += len(judged.violations)

    def _scan_all(self) -> None:
        started = time.monotonic()
        report = self.rules.scan(self.rules.judged_zones())
        self.full_scans += 1
        self.judged += report.files
        self.violations += len(report.violations)
        log.info("storage_full_scan", files=report.files, bytes=report.bytes,
                 violations=len(report.violations),
                 seconds=round(time.monotonic() - started, 3))
