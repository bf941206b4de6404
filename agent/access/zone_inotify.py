"""Every directory of every zone watched through one inotify instance: the kernel interface
under the access log's fallback source (A5) and the storage watcher (S4, S5, S7).

It is the same kernel interface watchdog's ``InotifyObserver`` uses, through watchdog's
bindings (``watchdog.observers.inotify_c``), but read here directly, because:

* watchdog 6 drops the kernel's ``IN_Q_OVERFLOW`` (it skips every event with ``wd == -1``), and
  a lost event must leave a gap marker in the trail;
* watchdog gives every watched tree its own inotify instance and thread, and the kernel allows
  128 instances per user by default; here one instance watches every zone of every project.

How: one watch per directory of every zone, with the file events a subclass asks for
(``FILE_MASK``, handed to ``_file_event``); ``IN_CREATE``/``IN_MOVED_TO`` of a directory has the
new tree watched at once and handed to ``_tree_arrived``. Directories are
opened with ``O_NOFOLLOW`` and watched through ``/proc/self/fd``, as the gate marks them, so a
symlink planted in a zone is never followed. The zones follow the gate's view: new zones are
watched before ``publish`` returns, zones that left are unwatched.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import os
import select
import struct
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import structlog

from agent.access.acl import open_dir_nofollow
from agent.access.live import GateViewHolder
from agent.access.plan import GateView, ZoneAccess
from agent.audit.redact import redact_identity_numbers

log = structlog.get_logger("vokterd.zone_inotify")

IN_OPEN = 0x00000020
IN_CLOSE_WRITE = 0x00000008
IN_CLOSE = IN_CLOSE_WRITE | 0x00000010
IN_MOVED_FROM = 0x00000040
IN_MOVED_TO = 0x00000080
IN_CREATE = 0x00000100
IN_Q_OVERFLOW = 0x00004000
IN_IGNORED = 0x00008000
IN_ONLYDIR = 0x01000000
IN_EXCL_UNLINK = 0x04000000
IN_ISDIR = 0x40000000
_TREE_MASK = IN_CREATE | IN_MOVED_FROM | IN_MOVED_TO | IN_ONLYDIR | IN_EXCL_UNLINK
_HEADER = struct.Struct("iIII")
_READ_SIZE = 256 * 1024
_VANISHED = (FileNotFoundError, NotADirectoryError)


def _bindings() -> Any:
    """watchdog's ctypes bindings; imported late, since importing them fails without glibc."""
    from watchdog.observers import inotify_c

    return inotify_c


def parse_events(buffer: bytes) -> Iterator[tuple[int, int, str]]:
    """(watch descriptor, mask, name) of each ``struct inotify_event`` in ``buffer``."""
    offset = 0
    while offset + _HEADER.size <= len(buffer):
        wd, mask, _cookie, length = _HEADER.unpack_from(buffer, offset)
        start = offset + _HEADER.size
        name = buffer[start:start + length].rstrip(b"\0")
        offset = start + length
        yield wd, mask, os.fsdecode(name)


class ZoneInotify:
    """Subclasses say which file events they want (``FILE_MASK``) and what to do with one
    (``_file_event``); the tree bookkeeping, overflow and symlink safety are here."""

    FILE_MASK = 0
    THREAD_NAME = "vokterd-zone-inotify"

    def __init__(
        self,
        views: GateViewHolder,
        *,
        on_overflow: Callable[[], None],
        on_problem: Callable[[str, dict[str, Any]], None],
    ) -> None:
        self._views = views
        self._mask = self.FILE_MASK | _TREE_MASK
        self._on_overflow = on_overflow
        self._on_problem = on_problem
        self._fd = -1
        self._wake: tuple[int, int] = (-1, -1)
        self._thread: threading.Thread | None = None
        self._running = False
        self._subscribed = False
        # Guards the maps below. The reader takes it only to change them (new directories,
        # moves), never while calling ``on_open``.
        self._lock = threading.Lock()
        self._path_of: dict[int, str] = {}
        self._wd_of: dict[str, int] = {}
        #: Watches of directories moved away, until the move's other half re-adopts them.
        self._orphans: dict[int, str] = {}
        self._zone_roots: set[str] = set()

    @property
    def watched_directories(self) -> int:
        return len(self._wd_of)

    # --- life cycle ---------------------------------------------------------------------------

    def start(self) -> None:
        """Raises OSError if inotify cannot be set up (then nothing is left open)."""
        if self._running:
            return
        try:
            bindings = _bindings()
        except Exception as error:  # watchdog refuses a libc without inotify
            raise OSError(f"inotify is not available: {error}") from None
        fd = bindings.inotify_init()
        if fd < 0:
            code = ctypes.get_errno()
            raise OSError(code, f"inotify_init: {os.strerror(code)}")
        try:
            fcntl.fcntl(fd, fcntl.F_SETFD, fcntl.FD_CLOEXEC)
            fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) | os.O_NONBLOCK)
            self._wake = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
        except OSError:
            os.close(fd)
            raise
        self._fd = fd
        self._running = True
        self._thread = threading.Thread(target=self._loop, name=self.THREAD_NAME,
                                        daemon=True)
        self._thread.start()
        if not self._subscribed:
            self._views.subscribe(self._on_view)
            self._subscribed = True
        self._on_view(self._views.current())
        log.info("zone_inotify_started", watcher=self.THREAD_NAME,
                 directories=self.watched_directories)

    def stop(self) -> None:
        with self._lock:
            if not self._running:
                return
            self._running = False
        os.write(self._wake[1], b"x")
        if self._thread is not None:
            self._thread.join(timeout=10)
            if self._thread.is_alive():
                log.error("inotify_thread_stuck")
        self._thread = None
        for fd in (self._fd, *self._wake):
            if fd >= 0:
                os.close(fd)  # the kernel drops every watch with the instance
        self._fd, self._wake = -1, (-1, -1)
        with self._lock:
            self._path_of.clear()
            self._wd_of.clear()
            self._orphans.clear()
            self._zone_roots.clear()

    # --- reading ------------------------------------------------------------------------------

    def _loop(self) -> None:
        poller = select.poll()
        poller.register(self._fd, select.POLLIN)
        poller.register(self._wake[0], select.POLLIN)
        while True:
            ready = {fd for fd, _ in poller.poll()}
            stopping = self._wake[0] in ready
            # At stop, what the kernel already queued is still read: those opens happened.
            while self._read_once() and stopping:
                pass
            if stopping:
                return

    def _read_once(self) -> bool:
        """Read and handle one buffer of events; False when there was nothing to read."""
        try:
            buffer = os.read(self._fd, _READ_SIZE)
        except BlockingIOError:
            return False
        except OSError as error:
            log.error("inotify_read_failed", error=str(error))
            return False
        try:
            self._handle(buffer)
        except Exception:
            log.exception("inotify_events_failed")
        return bool(buffer)

    def _handle(self, buffer: bytes) -> None:
        view = self._views.current()
        for wd, mask, name in parse_events(buffer):
            if mask & IN_Q_OVERFLOW:
                self._overflowed()
                continue
            if mask & IN_IGNORED:
                with self._lock:
                    self._drop(wd)
                continue
            directory = self._path_of.get(wd)
            if directory is None or not name:
                continue
            path = os.path.join(directory, name)
            if mask & IN_ISDIR:
                if mask & (IN_CREATE | IN_MOVED_TO):
                    self._watch_trees([path])
                    self._tree_arrived(path)
                elif mask & IN_MOVED_FROM:
                    self._orphan_tree(path)
                continue
            if mask & self.FILE_MASK:
                zone = view.zone_of(path)
                if zone is not None:
                    try:
                        self._file_event(path, mask, zone)
                    except Exception:
                        log.exception("inotify_file_event_failed",
                                      path=redact_identity_numbers(path))
        self._release_orphans()

    def _file_event(self, path: str, mask: int, zone: ZoneAccess) -> None:
        """One event of ``FILE_MASK`` about a file in ``zone``; runs on the reader thread."""

    def _tree_arrived(self, path: str) -> None:
        """A directory was made or moved into a zone (its tree is watched already): files
        moved in with it raised no file event of their own."""

    def _overflowed(self) -> None:
        log.warning("inotify_overflow")
        try:
            self._on_overflow()
        except Exception:
            log.exception("inotify_on_overflow_failed")
        # Lost events may include new directories: watch every zone again.
        self._watch_trees(sorted(self._zone_roots))

    # --- watches ------------------------------------------------------------------------------

    def _on_view(self, view: GateView) -> None:
        roots = set(view.zones)
        with self._lock:
            if not self._running:
                return
            new = roots - self._zone_roots
            self._zone_roots = roots
            for path in [p for p in self._wd_of if view.zone_of(p) is None]:
                self._unwatch(path)
        if new:
            self._watch_trees(sorted(new))

    def _watch_trees(self, roots: Iterable[str]) -> None:
        """Watch each directory under ``roots``: watch first, then list, so none slips between."""
        with self._lock:
            stack = list(roots)
            while stack and self._running:
                stack.extend(self._watch_one(stack.pop()))

    def _watch_one(self, path: str) -> list[str]:
        try:
            # Every component without following a link: a folder on the way swapped for a
            # symlink (to /, say) must not have the whole host watched.
            fd = open_dir_nofollow(path, readable=True)
        except _VANISHED:
            return []
        except OSError as error:
            self._problem("watch_failed", {"path": path, "error": error.strerror or str(error)})
            return []
        try:
            wd = _bindings().inotify_add_watch(self._fd, os.fsencode(f"/proc/self/fd/{fd}"),
                                               self._mask)
            if wd < 0:
                code = ctypes.get_errno()
                self._problem("watch_failed", {"path": path, "error": os.strerror(code)})
                return []
            self._remember(path, wd)
            with os.scandir(fd) as entries:
                return [os.path.join(path, e.name) for e in entries
                        if e.is_dir(follow_symlinks=False)]
        except OSError as error:
            self._problem("watch_failed", {"path": path, "error": error.strerror or str(error)})
            return []
        finally:
            os.close(fd)

    def _remember(self, path: str, wd: int) -> None:
        self._orphans.pop(wd, None)
        old_path = self._path_of.get(wd)
        if old_path is not None and old_path != path:
            self._wd_of.pop(old_path, None)  # renamed: one inode, one watch
        old_wd = self._wd_of.get(path)
        if old_wd is not None and old_wd != wd:
            self._path_of.pop(old_wd, None)
        self._path_of[wd] = path
        self._wd_of[path] = wd

    def _drop(self, wd: int) -> None:
        path = self._path_of.pop(wd, None)
        if path is not None and self._wd_of.get(path) == wd:
            del self._wd_of[path]
        self._orphans.pop(wd, None)

    def _unwatch(self, path: str) -> None:
        wd = self._wd_of.pop(path, None)
        if wd is not None:
            self._path_of.pop(wd, None)
            with contextlib.suppress(Exception):
                _bindings().inotify_rm_watch(self._fd, wd)

    def _orphan_tree(self, moved: str) -> None:
        """A directory moved away: its watches keep no path until the move's other half (in
        the same batch, if it stays in a zone) watches it again under its new name."""
        with self._lock:
            prefix = moved + "/"
            for path in [p for p in self._wd_of if p == moved or p.startswith(prefix)]:
                wd = self._wd_of.pop(path)
                self._path_of.pop(wd, None)
                self._orphans[wd] = path

    def _release_orphans(self) -> None:
        if not self._orphans:
            return
        with self._lock:
            for wd in list(self._orphans):
                with contextlib.suppress(Exception):
                    _bindings().inotify_rm_watch(self._fd, wd)
            self._orphans.clear()

    def _problem(self, kind: str, details: dict[str, Any]) -> None:
        log.warning("inotify_problem", kind=kind,
                    **{k: redact_identity_numbers(str(v)) for k, v in details.items()})
        try:
            self._on_problem(kind, details)
        except Exception:
            log.exception("inotify_on_problem_failed", kind=kind)
