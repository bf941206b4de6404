"""The fanotify permission gate: every open inside a zone is answered from the live access list.

Why: POSIX ACLs are checked when a file is opened and again only at the next open, and applying
them to a large zone takes time. A member removed from a project may still have a shell running
with its working directory inside the zone; the gate makes the removal hold for that shell's
very next open, because the answer comes from ``GateViewHolder.current()``, which the access
service replaces the moment the removal commits. ACLs remain the layer that holds while the
daemon is down.

How:

* Permission group (``FAN_CLASS_CONTENT``): an inode mark with ``FAN_OPEN_PERM |
  FAN_EVENT_ON_CHILD | FAN_ONDIR`` on every directory of every zone covers opening each
  directory and each file directly in it. An exec opens the file too, so ``FAN_OPEN_PERM``
  already covers it; ``FAN_OPEN_EXEC_PERM`` would only ask the same question twice. One reader
  thread answers: the daemon's own opens pass at once; otherwise the path (from the event fd)
  and the opener's fsuid go to ``decide_open``. The thread takes no lock: it reads the view
  with ``current()`` and nothing else, so it can never wait on a thread that waits on an open.
  A path it cannot judge is denied inside a zone and allowed outside every zone.
* Notification group (``FAN_REPORT_DFID_NAME``): marks on the same directories report new
  directories (created or moved in), which are marked at once in both groups together with
  whatever already exists inside them (``mkdir -p``), and attribute changes (ACL or mode
  drift) made by anyone but the daemon. A map from file handle to path turns the directory
  handle in each event back into a path.
* Marks are walked with ``os.scandir`` without following symlinks. The walk does descend into
  file systems mounted inside a zone: the gate guards the zone's path, whatever lies under it,
  and inode marks never reach beyond the directories marked.
* ``stop()`` closes both groups: the kernel then allows every open still waiting for an answer
  and drops every mark, so a stopped or crashed daemon never locks anyone out; the ACLs still
  hold. Marks on deleted directories vanish with the inode (``FAN_DELETE_SELF`` drops them
  from the handle map); a zone leaving the view loses its marks.
* The reader threads take no lock, but ``on_denied``, ``on_allowed`` and ``on_problem`` run
  on them (and ``on_problem`` also on whichever thread publishes a view): all must only queue.
* ``on_allowed`` (the data-access log, A5) hears each allowed open of a regular file in a zone,
  with the opener's uid, pid and executable, read while the opener still waits (a short-lived
  ``cat`` has often exited by the time anyone else looks).

Known limits (by the kernel's design): a file already open before a removal stays readable
through that descriptor; FIFOs and device nodes get no permission events (kernel 6.18 sends
them for regular files and directories only); a directory created (or moved in) and used
within the instant before its mark is placed is not gated for that instant; a bind-mount alias
of a zone that the daemon's mount namespace cannot see resolves to a path outside every zone.
"""

from __future__ import annotations

import contextlib
import os
import select
import stat
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import structlog

from agent.access import fanotify as fan
from agent.access.acl import open_dir_nofollow
from agent.access.live import GateViewHolder
from agent.access.marked import MarkedDirectories
from agent.access.plan import GateView, ZoneAccess, decide_open
from agent.access.processes import fsuid, program_name, program_path
from agent.audit.redact import redact_identity_numbers

log = structlog.get_logger("vokterd.gate")

_PERM_INIT = fan.FAN_CLASS_CONTENT | fan.FAN_UNLIMITED_QUEUE | fan.FAN_CLOEXEC | fan.FAN_NONBLOCK
_PERM_EVENT_FLAGS = os.O_RDONLY | os.O_LARGEFILE | os.O_CLOEXEC
_PERM_MASK = fan.FAN_OPEN_PERM | fan.FAN_EVENT_ON_CHILD | fan.FAN_ONDIR
_NOTIF_INIT = (fan.FAN_CLASS_NOTIF | fan.FAN_REPORT_DFID_NAME | fan.FAN_UNLIMITED_QUEUE
               | fan.FAN_CLOEXEC | fan.FAN_NONBLOCK)
_NOTIF_MASK = (fan.FAN_ATTRIB | fan.FAN_CREATE | fan.FAN_MOVED_TO | fan.FAN_DELETE_SELF
               | fan.FAN_ONDIR | fan.FAN_EVENT_ON_CHILD)
_MARK_FLAGS = fan.FAN_MARK_INODE | fan.FAN_MARK_DONT_FOLLOW | fan.FAN_MARK_ONLYDIR
_VANISHED = (FileNotFoundError, NotADirectoryError)


@dataclass(frozen=True)
class DeniedOpen:
    path: str
    uid: int
    pid: int
    program: str
    zone: ZoneAccess


@dataclass(frozen=True)
class AllowedOpen:
    """An allowed open of a regular file in a zone; ``program`` is the executable's path."""

    path: str
    uid: int
    pid: int
    program: str
    zone: ZoneAccess


class AccessGate:
    def __init__(
        self,
        views: GateViewHolder,
        *,
        on_denied: Callable[[DeniedOpen], None],
        on_attrib: Callable[[str, int], None],
        on_problem: Callable[[str, dict[str, Any]], None],
        on_allowed: Callable[[AllowedOpen], None] | None = None,
    ) -> None:
        self._views = views
        self._on_denied = on_denied
        self._on_allowed = on_allowed
        self._on_attrib = on_attrib
        self._on_problem = on_problem
        self._pid = os.getpid()
        self._perm = -1
        self._notif = -1
        # One wake-up pipe per reader: the notification reader (which marks, and marking opens
        # directories) must finish before the permission reader stops answering.
        self._wake_perm: tuple[int, int] = (-1, -1)
        self._wake_notif: tuple[int, int] = (-1, -1)
        self._perm_thread: threading.Thread | None = None
        self._notif_thread: threading.Thread | None = None
        self._running = False
        self._subscribed = False
        # Guards the maps below; taken by marking only, never by the permission thread.
        self._lock = threading.Lock()
        self._marked = MarkedDirectories()
        self._zone_roots: set[str] = set()
        self._decisions = 0
        self._denials = 0

    @property
    def marked_directories(self) -> int:
        return len(self._marked)

    @property
    def decisions(self) -> int:
        return self._decisions

    @property
    def denials(self) -> int:
        return self._denials

    # --- life cycle ---------------------------------------------------------------------------

    def start(self) -> None:
        if self._running:
            return
        self._pid = os.getpid()
        self._perm = fan.init(_PERM_INIT, _PERM_EVENT_FLAGS)
        try:
            self._notif = fan.init(_NOTIF_INIT, os.O_RDONLY | os.O_CLOEXEC)
            self._wake_perm = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
            self._wake_notif = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
        except OSError:
            self._close_fds()
            raise
        self._running = True
        # The permission reader runs before the first mark: marking opens zone directories,
        # and those opens wait for its answer.
        self._perm_thread = self._spawn("vokterd-gate-perm", self._perm_loop)
        self._notif_thread = self._spawn("vokterd-gate-notify", self._notif_loop)
        if not self._subscribed:
            self._views.subscribe(self._on_view)
            self._subscribed = True
        self._on_view(self._views.current())
        log.info("gate_started", directories=self.marked_directories,
                 zones=len(self._zone_roots))

    def stop(self) -> None:
        with self._lock:
            if not self._running:
                return
            self._running = False
        for thread, wake in ((self._notif_thread, self._wake_notif),
                             (self._perm_thread, self._wake_perm)):
            os.write(wake[1], b"x")
            if thread is not None:
                thread.join(timeout=10)
                if thread.is_alive():
                    log.error("gate_thread_stuck", thread=thread.name)
        self._perm_thread = self._notif_thread = None
        self._close_fds()  # the kernel allows pending opens and drops every mark
        with self._lock:
            self._marked.clear()
            self._zone_roots.clear()
        log.info("gate_stopped", decisions=self._decisions, denials=self._denials)

    def _close_fds(self) -> None:
        for fd in (self._perm, self._notif, *self._wake_perm, *self._wake_notif):
            if fd >= 0:
                os.close(fd)
        self._perm, self._notif = -1, -1
        self._wake_perm, self._wake_notif = (-1, -1), (-1, -1)

    @staticmethod
    def _spawn(name: str, target: Callable[[], None]) -> threading.Thread:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        return thread

    @staticmethod
    def _wait_readable(fd: int, wake: int) -> bool:
        """Block until ``fd`` has events; False once stop() has written to ``wake``."""
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        poller.register(wake, select.POLLIN)
        while True:
            ready = {f for f, _ in poller.poll()}
            if wake in ready:
                return False
            if fd in ready:
                return True

    # --- permission events --------------------------------------------------------------------

    def _batches(self, fd: int, wake: int) -> Iterator[list[fan.Event]]:
        """Event batches from one group until stop() wakes the loop; read errors are logged."""
        while self._wait_readable(fd, wake):
            try:
                yield fan.read_events(fd)
            except BlockingIOError:
                continue
            except OSError as error:
                log.error("gate_read_failed", error=str(error))

    def _perm_loop(self) -> None:
        for events in self._batches(self._perm, self._wake_perm[0]):
            for event in events:
                if event.mask & fan.FAN_Q_OVERFLOW:
                    self._problem("overflow", {"group": "permission"})
                    continue
                if event.fd < 0:
                    continue
                try:
                    self._answer(event)
                except Exception:
                    # The opener waits until someone answers: never leave it without one.
                    log.exception("gate_event_failed", pid=event.pid)
                    with contextlib.suppress(OSError):
                        fan.respond(self._perm, event.fd, False)
                finally:
                    os.close(event.fd)

    def _answer(self, event: fan.Event) -> None:
        if event.pid == self._pid:
            fan.respond(self._perm, event.fd, True)
            return
        view = self._views.current()
        path: str | None = None
        uid: int | None = None
        zone: ZoneAccess | None = None
        try:
            path = os.readlink(f"/proc/self/fd/{event.fd}")
            zone = view.zone_of(path)
            uid = fsuid(event.pid)
            allow = zone is None if uid is None else decide_open(view, path, uid).allow
        except Exception as error:
            log.error("gate_judge_failed", pid=event.pid, path=path, error=repr(error))
            allow = path is not None and zone is None
        program = "" if allow else program_name(event.pid)
        if allow:
            self._report_allowed(event, path, uid, zone)
        fan.respond(self._perm, event.fd, allow)
        self._decisions += 1
        if allow:
            return
        self._denials += 1
        if path is not None and zone is not None and uid is not None:
            try:
                self._on_denied(DeniedOpen(path, uid, event.pid, program, zone))
            except Exception:
                log.exception("gate_on_denied_failed", path=path)
        else:
            self._problem("denied_unjudged",
                          {"path": path, "pid": event.pid, "uid": uid, "program": program})

    def _report_allowed(self, event: fan.Event, path: str | None, uid: int | None,
                        zone: ZoneAccess | None) -> None:
        """Regular files in a zone only; told before the answer, so the time is the open's
        and the program is still there. Never raises: the opener must get its answer."""
        if (self._on_allowed is None or path is None or uid is None or zone is None
                or event.mask & fan.FAN_ONDIR):
            return
        try:
            if stat.S_ISREG(os.fstat(event.fd).st_mode):
                self._on_allowed(AllowedOpen(path, uid, event.pid, program_path(event.pid),
                                             zone))
        except Exception:
            log.exception("gate_on_allowed_failed", path=redact_identity_numbers(path))

    # --- notification events ------------------------------------------------------------------

    def _notif_loop(self) -> None:
        for events in self._batches(self._notif, self._wake_notif[0]):
            for event in events:
                try:
                    self._notice(event)
                except Exception:
                    log.exception("gate_notice_failed", mask=hex(event.mask))

    def _notice(self, event: fan.Event) -> None:
        if event.mask & fan.FAN_Q_OVERFLOW:
            # Lost events may include new directories: walk every zone again.
            self._problem("overflow", {"group": "notification"})
            self._mark_trees(sorted(self._zone_roots))
            return
        for record in event.records:
            if record.info_type != fan.FAN_EVENT_INFO_TYPE_DFID_NAME or record.name is None:
                continue
            directory = self._marked.path_of(record.key)
            if directory is None:
                continue  # not (or no longer) ours
            self_event = record.name == "."  # an event on a marked directory itself
            path = directory if self_event else os.path.join(directory, record.name)
            if event.mask & fan.FAN_DELETE_SELF and self_event:
                with self._lock:
                    self._marked.forget(path)
                continue
            if (event.mask & fan.FAN_ONDIR and not self_event
                    and event.mask & (fan.FAN_CREATE | fan.FAN_MOVED_TO)):
                self._mark_trees([path])
            if event.mask & fan.FAN_ATTRIB and event.pid != self._pid:
                try:
                    self._on_attrib(path, event.pid)
                except Exception:
                    log.exception("gate_on_attrib_failed", path=path)

    # --- marks ----------------------------------------------------------------------------------

    def _on_view(self, view: GateView) -> None:
        """New zones are marked before ``publish`` returns; zones that left lose their marks."""
        roots = set(view.zones)
        with self._lock:
            if not self._running:
                return
            gone = self._zone_roots - roots
            new = roots - self._zone_roots
            self._zone_roots = roots
            for path in [p for p in self._marked.paths() if view.zone_of(p) is None]:
                self._unmark(path)
        if new:
            self._mark_trees(sorted(new))
        if gone or new:
            log.info("gate_zones_changed", added=len(new), removed=len(gone),
                     directories=self.marked_directories)

    def _mark_trees(self, roots: Iterable[str]) -> None:
        """Mark each directory under ``roots``: mark first, then list, so none slips between."""
        with self._lock:
            stack = list(roots)
            while stack and self._running:
                path = stack.pop()
                stack.extend(self._mark_one(path))

    def _mark_one(self, path: str) -> list[str]:
        try:
            # Every component without following a link: a folder on the way swapped for a
            # symlink (to /, say) must not have the whole host watched.
            fd = open_dir_nofollow(path, readable=True)
        except _VANISHED:
            return []
        except OSError as error:
            self._problem("mark_failed", {"path": path, "error": str(error)})
            return []
        try:
            try:
                fan.mark(self._perm, fan.FAN_MARK_ADD | _MARK_FLAGS, _PERM_MASK, None, fd)
            except OSError as error:
                self._problem("mark_failed", {"path": path, "error": str(error)})
                return []
            try:
                fan.mark(self._notif, fan.FAN_MARK_ADD | _MARK_FLAGS, _NOTIF_MASK, None, fd)
                key: fan.HandleKey | None = fan.handle_of(fd)
            except OSError as error:  # e.g. a file system without file handles
                self._problem("watch_failed", {"path": path, "error": str(error)})
                key = None
            self._marked.remember(path, key)
            with os.scandir(fd) as entries:
                return [os.path.join(path, e.name) for e in entries
                        if e.is_dir(follow_symlinks=False)]
        except OSError as error:
            self._problem("mark_failed", {"path": path, "error": str(error)})
            return []
        finally:
            os.close(fd)

    def _unmark(self, path: str) -> None:
        for group, mask in ((self._perm, _PERM_MASK), (self._notif, _NOTIF_MASK)):
            # Gone, renamed or never marked in this group: nothing is left to remove.
            with contextlib.suppress(OSError):
                fan.mark(group, fan.FAN_MARK_REMOVE | _MARK_FLAGS, mask, path)
        self._marked.forget(path)

    def _problem(self, kind: str, details: dict[str, Any]) -> None:
        log.warning("gate_problem", kind=kind, **details)
        try:
            self._on_problem(kind, details)
        except Exception:
            log.exception("gate_on_problem_failed", kind=kind)
