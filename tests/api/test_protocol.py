"""The wire format: 4-byte big-endian length + UTF-8 JSON, read with a size limit and a deadline."""

from __future__ import annotations

import socket
import struct
import threading
import time
from collections.abc import Iterator

import pytest

from agent.api.protocol import MAX_MESSAGE, decode_body, encode, read_frame, send_frame
from agent.errors import ProtocolError


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    left, right = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    with left, right:
        yield left, right


def test_frame_round_trip(pair: tuple[socket.socket, socket.socket]) -> None:
    left, right = pair
    message = {"v": 1, "op": "project.create",
               "args": {"title": "Diabetes og inntekt – Ålesund ✓", "n": [1, 2.5, None, True]}}
    send_frame(left, message)
    assert decode_body(read_frame(right, timeout=2.0)) == message


def test_frames_follow_each_other_without_mixing(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    left, right = pair
    left.sendall(encode({"n": 1}) + encode("two") + encode([3]))
    assert [decode_body(read_frame(right, 2.0)) for _ in range(3)] == [{"n": 1}, "two", [3]]


def test_encoding_is_length_prefixed_utf8_json() -> None:
    frame = encode({"å": 1})
    (length,) = struct.unpack(">I", frame[:4])
    assert length == len(frame) - 4
    assert frame[4:] == '{"å":1}'.encode()


def test_a_frame_at_the_limit_is_read(pair: tuple[socket.socket, socket.socket]) -> None:
    left, right = pair
    left.sendall(struct.pack(">I", 10) + b'"12345678"')
    assert read_frame(right, 2.0, limit=10) == b'"12345678"'


def test_an_oversized_frame_is_refused_without_reading_it(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    left, right = pair
    announced = MAX_MESSAGE + 1
    left.sendall(struct.pack(">I", announced) + b"BODY-NOT-READ")
    with pytest.raises(ProtocolError) as caught:
        read_frame(right, timeout=2.0)
    assert str(announced) in caught.value.message
    assert str(MAX_MESSAGE) in caught.value.message
    right.settimeout(2.0)
    assert right.recv(100) == b"BODY-NOT-READ"  # still in the socket: nothing was read


def test_oversized_refusal_does_not_wait_for_the_body(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    left, right = pair
    left.sendall(struct.pack(">I", 2 * 1024 * 1024))  # announces 2 MiB and sends nothing
    began = time.monotonic()
    with pytest.raises(ProtocolError, match="at most"):
        read_frame(right, timeout=5.0)
    assert time.monotonic() - began < 1.0


def test_a_half_frame_is_refused_after_the_deadline(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    left, right = pair
    left.sendall(struct.pack(">I", 100) + b"x" * 50)
    began = time.monotonic()
    with pytest.raises(ProtocolError, match="too slow"):
        read_frame(right, timeout=0.3)
    assert 0.25 <= time.monotonic() - began < 2.0


def test_the_deadline_covers_the_whole_frame_not_each_chunk(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    """A client trickling one byte at a time cannot stretch the deadline."""
    left, right = pair
    stop = threading.Event()

    def trickle() -> None:
        left.sendall(struct.pack(">I", 1000))
        while not stop.is_set():
            try:
                left.sendall(b"x")
            except OSError:
                return
            time.sleep(0.05)

    thread = threading.Thread(target=trickle, daemon=True)
    thread.start()
    began = time.monotonic()
    try:
        with pytest.raises(ProtocolError, match="too slow"):
            read_frame(right, timeout=0.5)
        assert time.monotonic() - began < 1.5
    finally:
        stop.set()
        thread.join(timeout=2)


def test_a_connection_closed_mid_frame_is_refused(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    left, right = pair
    left.sendall(struct.pack(">I", 100) + b"{")
    left.shutdown(socket.SHUT_WR)
    with pytest.raises(ProtocolError, match="closed in the middle"):
        read_frame(right, timeout=2.0)


def test_a_connection_closed_mid_header_is_refused(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    left, right = pair
    left.sendall(b"\x00\x00")
    left.shutdown(socket.SHUT_WR)
    with pytest.raises(ProtocolError, match="closed in the middle"):
        read_frame(right, timeout=2.0)


@pytest.mark.parametrize(
    "body",
    [b"not json", b"\xff\xfe{}", b"{'op': 'status'}", b"", b"[" * 200_000, b"{\"a\":1}garbage"],
    ids=["text", "not-utf8", "python-literal", "empty", "deeply-nested", "trailing-garbage"],
)
def test_garbage_bodies_are_refused_clearly(body: bytes) -> None:
    with pytest.raises(ProtocolError) as caught:
        decode_body(body)
    assert caught.value.message == "the request is not valid UTF-8 JSON"


def test_json_is_decoded_without_evaluating_anything() -> None:
    assert decode_body(b'{"__class__": "os.system", "args": ["rm -rf /"]}') == {
        "__class__": "os.system", "args": ["rm -rf /"]
    }
