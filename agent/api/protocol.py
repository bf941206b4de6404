"""The wire format: a 4-byte big-endian length, then that many bytes of UTF-8 JSON.

Length-prefixing lets the server refuse an oversized request before reading it, and lets both
sides know exactly where a message ends. JSON only: nothing received is ever unpickled or
evaluated.

A request may carry file descriptors (SCM_RIGHTS) that the client opened with its own rights,
so the daemon never opens a path a client names. A long request may answer with progress frames
(``{"progress": done, "total": n}``) before its one final answer (``{"ok": ...}``).
"""

from __future__ import annotations

import array
import contextlib
import json
import os
import socket
import struct
import time
from collections.abc import Sequence
from typing import Any

from agent.errors import ProtocolError

MAX_MESSAGE = 1024 * 1024
MAX_RESPONSE = 64 * 1024 * 1024
PROTOCOL_VERSION = 1
#: At most this many file descriptors may come with one request (an export passes two).
MAX_FDS = 4
_HEADER = struct.Struct(">I")
_FD = array.array("i")


def encode(message: Any) -> bytes:
    body = json.dumps(message, separators=(",", ":"), ensure_ascii=False, default=str).encode()
    return _HEADER.pack(len(body)) + body


def decode_body(body: bytes) -> Any:
    try:
        return json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        raise ProtocolError("the request is not valid UTF-8 JSON") from None


def _recv_with_fds(sock: socket.socket, size: int, fds: list[int], max_fds: int) -> bytes:
    """One ``recvmsg`` that keeps any descriptors passed with the bytes (close-on-exec)."""
    space = socket.CMSG_SPACE(max_fds * _FD.itemsize)
    chunk, ancillary, flags, _ = sock.recvmsg(size, space, socket.MSG_CMSG_CLOEXEC)
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            received = array.array("i")
            received.frombytes(data[: len(data) - len(data) % _FD.itemsize])
            fds.extend(received)
    if flags & socket.MSG_CTRUNC or len(fds) > max_fds:
        raise ProtocolError(f"too many file descriptors came with the request; at most "
                            f"{max_fds} are accepted")
    return chunk


def _recv_exact(
    sock: socket.socket, count: int, deadline: float, fds: list[int] | None = None,
    max_fds: int = 0,
) -> bytes:
    chunks: list[bytes] = []
    remaining = count
    while remaining:
        left = deadline - time.monotonic()  # wall-clock: a socket deadline, not a decision
        if left <= 0:
            raise ProtocolError("the request was too slow to arrive; send it in one go")
        sock.settimeout(left)
        try:
            if fds is None:
                chunk = sock.recv(min(remaining, 65536))
            else:
                chunk = _recv_with_fds(sock, min(remaining, 65536), fds, max_fds)
        except TimeoutError:
            raise ProtocolError("the request was too slow to arrive; send it in one go") from None
        if not chunk:
            raise ProtocolError("the connection closed in the middle of a message")
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def read_frame(sock: socket.socket, timeout: float, limit: int = MAX_MESSAGE) -> bytes:
    """Read one message; refuse it, unread, when its announced length is over ``limit``."""
    deadline = time.monotonic() + timeout  # wall-clock: a socket deadline, not a decision
    header = _recv_exact(sock, _HEADER.size, deadline)
    (length,) = _HEADER.unpack(header)
    if length > limit:
        raise ProtocolError(f"the message is {length} bytes; at most {limit} are accepted")
    return _recv_exact(sock, length, deadline)


def read_frame_with_fds(
    sock: socket.socket, timeout: float, limit: int = MAX_MESSAGE, max_fds: int = MAX_FDS
) -> tuple[bytes, list[int]]:
    """Read one message and the file descriptors passed with it (SCM_RIGHTS). Every descriptor
    received is the caller's to close, and is closed here if the message is refused."""
    fds: list[int] = []
    try:
        deadline = time.monotonic() + timeout  # wall-clock: a socket deadline, not a decision
        header = _recv_exact(sock, _HEADER.size, deadline, fds, max_fds)
        (length,) = _HEADER.unpack(header)
        if length > limit:
            raise ProtocolError(f"the message is {length} bytes; at most {limit} are accepted")
        body = _recv_exact(sock, length, deadline, fds, max_fds)
    except BaseException:
        close_fds(fds)
        raise
    return body, fds


def close_fds(fds: Sequence[int]) -> None:
    for fd in fds:
        with contextlib.suppress(OSError):
            os.close(fd)


def send_frame(sock: socket.socket, message: Any, fds: Sequence[int] = ()) -> None:
    """Send one message; ``fds`` travel with its first bytes, so the reader gets them with the
    frame whatever its chunking."""
    data = encode(message)
    if not fds:
        sock.sendall(data)
        return
    sent = socket.send_fds(sock, [data], list(fds))
    if sent < len(data):
        sock.sendall(data[sent:])
