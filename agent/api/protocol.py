"""The wire format: a 4-byte big-endian length, then that many bytes of UTF-8 JSON.

Length-prefixing lets the server refuse an oversized request before reading it, and lets both
sides know exactly where a message ends. JSON only: nothing received is ever unpickled or
evaluated.
"""

from __future__ import annotations

import json
import socket
import struct
import time
from typing import Any

from agent.errors import ProtocolError

MAX_MESSAGE = 1024 * 1024
MAX_RESPONSE = 64 * 1024 * 1024
PROTOCOL_VERSION = 1
_HEADER = struct.Struct(">I")


def encode(message: Any) -> bytes:
    body = json.dumps(message, separators=(",", ":"), ensure_ascii=False, default=str).encode()
    return _HEADER.pack(len(body)) + body


def decode_body(body: bytes) -> Any:
    try:
        return json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        raise ProtocolError("the request is not valid UTF-8 JSON") from None


def _recv_exact(sock: socket.socket, count: int, deadline: float) -> bytes:
    chunks: list[bytes] = []
    remaining = count
    while remaining:
        left = deadline - time.monotonic()  # wall-clock: a socket deadline, not a decision
        if left <= 0:
            raise ProtocolError("the request was too slow to arrive; send it in one go")
        sock.settimeout(left)
        try:
            chunk = sock.recv(min(remaining, 65536))
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


def send_frame(sock: socket.socket, message: Any) -> None:
    sock.sendall(encode(message))
