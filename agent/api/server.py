"""The Unix socket: accept, identify the caller by SO_PEERCRED, frame, hand to ``dispatch``.

One request per connection; each connection on its own thread, at most ``max_clients`` at once
(a further client is told the daemon is busy), with a deadline for the request to arrive, so a
slow or stuck client costs one thread for a few seconds and never blocks the others.

File descriptors passed with a request are handed to ``dispatch`` (``Attachments``) and always
closed here afterwards, used or not; an operation that takes none refuses a request with some.
"""

from __future__ import annotations

import contextlib
import os
import socket
import stat
import struct
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import structlog

from agent.api.dispatch import Attachments, Caller, Progress, attached
from agent.api.protocol import close_fds, decode_body, read_frame, read_frame_with_fds, send_frame
from agent.errors import ConfigError, Failed, ProtocolError, VokterError

log = structlog.get_logger("vokterd.socket")

Handle = Callable[[Any, Caller], dict[str, Any]]
Refuse = Callable[[Caller, VokterError], None]
NameOf = Callable[[int], str]
_CRED = struct.Struct("3i")


def peer_caller(conn: socket.socket, name_of: NameOf) -> Caller:
    raw = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _CRED.size)
    pid, uid, gid = _CRED.unpack(raw)
    return Caller(uid=uid, gid=gid, pid=pid, name=name_of(uid))


def _claim_socket_path(path: Path) -> None:
    """Remove a stale socket left by a dead daemon; refuse if a live one answers there."""
    if not os.path.lexists(path):
        if not path.parent.is_dir():
            path.parent.mkdir(parents=True, mode=0o755)
            path.parent.chmod(0o755)  # clients of every user must reach the socket
        return
    if not stat.S_ISSOCK(os.lstat(path).st_mode):
        raise ConfigError(f"{path} exists and is not a socket; refusing to replace it")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(str(path))
    except OSError:
        path.unlink()
        return
    finally:
        probe.close()
    raise ConfigError(f"another vokterd is already listening on {path}")


class SocketServer:
    def __init__(
        self,
        path: Path,
        handle: Handle,
        refuse: Refuse,
        name_of: NameOf,
        *,
        timeout: float = 5.0,
        max_clients: int = 64,
    ) -> None:
        self.path = path
        self._handle = handle
        self._refuse = refuse
        self._name_of = name_of
        self._timeout = timeout
        self._slots = threading.BoundedSemaphore(max_clients)
        self._sock: socket.socket | None = None
        self._inode: int | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()

    def start(self) -> None:
        _claim_socket_path(self.path)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.bind(str(self.path))
        # Anyone may connect: the kernel tells us who they are (SO_PEERCRED).
        os.chmod(self.path, 0o666)  # noqa: S103
        sock.listen(128)
        self._inode = os.lstat(self.path).st_ino
        self._sock = sock
        self._thread = threading.Thread(target=self._accept_loop, name="accept", daemon=True)
        self._thread.start()

    def _accept_loop(self) -> None:
        assert self._sock is not None
        while not self._stopping.is_set():
            try:
                conn, _ = self._sock.accept()
            except OSError:
                if self._stopping.is_set():
                    return
                continue
            if not self._slots.acquire(blocking=False):
                threading.Thread(target=self._busy, args=(conn,), daemon=True).start()
                continue
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _busy(self, conn: socket.socket) -> None:
        with conn, contextlib.suppress(OSError):
            # Read (and drop) the request first: closing with it unread would reset the
            # connection, and the client would see a broken pipe instead of "busy".
            with contextlib.suppress(ProtocolError):
                read_frame(conn, 1.0)
            conn.settimeout(1.0)
            busy = Failed("vokterd is busy with other clients", hint="try again in a moment")
            send_frame(conn, {"ok": False, "error": busy.to_wire()})

    def _progress_to(self, conn: socket.socket) -> Progress:
        def progress(done: int, total: int) -> None:
            try:
                conn.settimeout(self._timeout)
                send_frame(conn, {"progress": done, "total": total})
            except OSError:
                raise Failed("the client went away before the answer was complete; "
                             "stopped") from None
        return progress

    def _serve(self, conn: socket.socket) -> None:
        fds: list[int] = []
        try:
            with conn:
                caller = peer_caller(conn, self._name_of)
                try:
                    body, fds = read_frame_with_fds(conn, self._timeout)
                    message = decode_body(body)
                except ProtocolError as error:
                    self._refuse(caller, error)
                    with contextlib.suppress(OSError):
                        conn.settimeout(1.0)
                        send_frame(conn, {"ok": False, "error": error.to_wire()})
                    return
                with attached(Attachments(tuple(fds), self._progress_to(conn))):
                    response = self._handle(message, caller)
                close_fds(fds)  # the export is on disk: let the client see its file closed
                fds = []
                conn.settimeout(self._timeout)
                send_frame(conn, response)
        except OSError as exc:
            log.info("client_gone", error=type(exc).__name__)
        except Exception:
            log.exception("connection_failed")
        finally:
            close_fds(fds)
            self._slots.release()

    def stop(self) -> None:
        self._stopping.set()
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.shutdown(socket.SHUT_RDWR)
            self._sock.close()
        with contextlib.suppress(OSError):
            if os.lstat(self.path).st_ino == self._inode:
                self.path.unlink()
        if self._thread is not None:
            self._thread.join(timeout=5)
