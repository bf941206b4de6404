"""Streaming between descriptors (S3): round trips at every segment edge, pipes with short
reads and writes, authenticate-only mode, progress, and memory that does not grow with size."""

from __future__ import annotations

import base64
import os
import threading
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.crypto.keyset import Keyset, StreamingKey, new_keyset
from agent.crypto.stream_io import StreamResult, decrypt_stream, encrypt_stream, sealed_with
from agent.crypto.streaming import Layout, SegmentDecryptor, SegmentEncryptor

AD = b"vokter-file-v1:stream-test"


def edge_sizes(segment_size: int) -> list[int]:
    layout = Layout(segment_size, 40)
    first, rest = layout.first_plaintext, layout.plaintext
    return [0, 1, first - 1, first, first + 1, first + rest, first + 2 * rest,
            first + 2 * rest + 1, 5 * segment_size + 7]


def encrypt_file(path: Path, out: Path, key: StreamingKey) -> StreamResult:
    with path.open("rb") as src, out.open("wb") as dst:
        return encrypt_stream(src.fileno(), dst.fileno(), key, AD)


def decrypt_file(path: Path, out: Path | None, keyset: Keyset) -> StreamResult:
    with path.open("rb") as src:
        if out is None:
            return decrypt_stream(src.fileno(), None, keyset, AD)
        with out.open("wb") as dst:
            return decrypt_stream(src.fileno(), dst.fileno(), keyset, AD)


@pytest.mark.parametrize("segment_size", [4096, 65536])
def test_s3_round_trip_at_every_segment_edge(tmp_path: Path, segment_size: int) -> None:
    keyset = new_keyset(segment_size=segment_size)
    layout = Layout.of(keyset.primary)
    for size in edge_sizes(segment_size):
        data = os.urandom(size)
        (tmp_path / "plain").write_bytes(data)
        sealed = encrypt_file(tmp_path / "plain", tmp_path / "sealed", keyset.primary)
        assert sealed == StreamResult(size, layout.ciphertext_size(size))
        assert (tmp_path / "sealed").stat().st_size == layout.ciphertext_size(size)
        opened = decrypt_file(tmp_path / "sealed", tmp_path / "opened", keyset)
        assert opened == sealed
        assert (tmp_path / "opened").read_bytes() == data, size


def test_s3_same_plaintext_encrypts_differently_each_time(tmp_path: Path) -> None:
    keyset = new_keyset()
    (tmp_path / "plain").write_bytes(b"x" * 1000)
    encrypt_file(tmp_path / "plain", tmp_path / "a", keyset.primary)
    encrypt_file(tmp_path / "plain", tmp_path / "b", keyset.primary)
    assert (tmp_path / "a").read_bytes() != (tmp_path / "b").read_bytes()


def test_s3_authenticate_only_writes_nothing_and_counts(tmp_path: Path) -> None:
    keyset = new_keyset(segment_size=4096)
    (tmp_path / "plain").write_bytes(os.urandom(50_000))
    sealed = encrypt_file(tmp_path / "plain", tmp_path / "sealed", keyset.primary)
    assert decrypt_file(tmp_path / "sealed", None, keyset) == sealed


def test_s3_progress_reports_input_consumed_up_to_the_whole_file(tmp_path: Path) -> None:
    keyset = new_keyset(segment_size=4096)
    (tmp_path / "plain").write_bytes(os.urandom(20_000))
    seen: list[int] = []
    with (tmp_path / "plain").open("rb") as src, (tmp_path / "sealed").open("wb") as dst:
        encrypt_stream(src.fileno(), dst.fileno(), keyset.primary, AD, progress=seen.append)
    assert seen == sorted(seen) and seen[-1] == 20_000 and len(seen) == 5
    opened: list[int] = []
    with (tmp_path / "sealed").open("rb") as src:
        decrypt_stream(src.fileno(), None, keyset, AD, progress=opened.append)
    assert opened == sorted(opened) and opened[-1] == (tmp_path / "sealed").stat().st_size


def _pump_in_dribbles(fd: int, data: bytes, chunk: int) -> None:
    """Feeds a pipe a few bytes at a time, so the reader sees short reads."""
    with os.fdopen(fd, "wb", buffering=0) as pipe:
        for start in range(0, len(data), chunk):
            pipe.write(data[start:start + chunk])


def _drain(fd: int, into: bytearray) -> None:
    with os.fdopen(fd, "rb", buffering=0) as pipe:
        while block := pipe.read(1000):
            into.extend(block)


@pytest.fixture
def pipes() -> Iterator[list[int]]:
    """Read ends the test reads to their end; the helper threads close the other ends."""
    opened: list[int] = []
    yield opened
    for fd in opened:
        os.close(fd)


def test_s3_short_reads_and_writes_through_pipes(pipes: list[int]) -> None:
    """Pipes hand out what is there and take at most their capacity per write: the stream
    must carry on across both."""
    keyset = new_keyset(segment_size=4096)
    data = os.urandom(100_003)
    in_r, in_w = os.pipe()
    mid_r, mid_w = os.pipe()
    out_r, out_w = os.pipe()
    pipes.append(in_r)
    sealed = bytearray()
    feeder = threading.Thread(target=_pump_in_dribbles, args=(in_w, data, 777))
    reader = threading.Thread(target=_drain, args=(mid_r, sealed))
    feeder.start(), reader.start()
    encrypt_stream(in_r, mid_w, keyset.primary, AD)
    os.close(mid_w)
    feeder.join(), reader.join()
    in2_r, in2_w = os.pipe()
    pipes.append(in2_r)
    opened = bytearray()
    feeder = threading.Thread(target=_pump_in_dribbles, args=(in2_w, bytes(sealed), 333))
    reader = threading.Thread(target=_drain, args=(out_r, opened))
    feeder.start(), reader.start()
    result = decrypt_stream(in2_r, out_w, keyset, AD)
    os.close(out_w)
    feeder.join(), reader.join()
    assert bytes(opened) == data and result.plaintext_bytes == len(data)


def _zeros_into_pipe(fd: int, total: int) -> None:
    block = bytes(1 << 16)
    with os.fdopen(fd, "wb", buffering=0) as pipe:
        for _ in range(total >> 16):
            pipe.write(block)


def test_s3_memory_does_not_grow_with_file_size() -> None:
    """A 64 MB stream through encrypt and decrypt: Python's peak allocation stays a few
    segment buffers, not the file."""
    keyset = new_keyset()
    total = 64 << 20
    src_r, src_w = os.pipe()
    sealed_path_r, sealed_path_w = os.pipe()
    sink = os.open(os.devnull, os.O_WRONLY)
    tracemalloc.start()
    try:
        feeder = threading.Thread(target=_zeros_into_pipe, args=(src_w, total))
        result: list[StreamResult] = []
        opener = threading.Thread(target=lambda: result.append(
            decrypt_stream(sealed_path_r, sink, keyset, AD)))
        feeder.start(), opener.start()
        sealed = encrypt_stream(src_r, sealed_path_w, keyset.primary, AD)
        os.close(sealed_path_w)
        feeder.join(), opener.join()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        for fd in (src_r, sealed_path_r, sink):
            os.close(fd)
    assert sealed.plaintext_bytes == total and result[0].plaintext_bytes == total
    assert peak < 2 << 20, f"peak {peak} bytes"


def test_s5_key_material_never_in_repr_of_the_segment_machinery() -> None:
    keyset = new_keyset()
    secret = keyset.primary.key_value
    encryptor = SegmentEncryptor(keyset.primary, AD)
    decryptor = SegmentDecryptor(keyset, AD, encryptor.header)
    forms = [secret.hex(), base64.b64encode(secret).decode()]
    for text in (repr(encryptor), str(encryptor), repr(decryptor), str(decryptor)):
        assert not any(form in text for form in forms), text


def test_s3_encryptor_refuses_a_short_segment_that_is_not_the_last() -> None:
    encryptor = SegmentEncryptor(new_keyset(segment_size=4096).primary, AD)
    out = memoryview(bytearray(4096))
    with pytest.raises(ValueError, match="must hold"):
        encryptor.seal_into(b"short", out, last=False)
    assert encryptor.seal_into(b"short", out, last=True) == 5 + 16
    with pytest.raises(ValueError, match="already sealed"):
        encryptor.seal_into(b"", out, last=True)


def test_s3_every_key_is_tried_whatever_its_segment_size(tmp_path: Path) -> None:
    """A keyset after a rotation may mix segment sizes: the first read covers the longest
    first segment, and what it read past the chosen key's segment 0 is not lost."""
    small = StreamingKey(11, os.urandom(32), segment_size=4096)
    large = StreamingKey(22, os.urandom(32), segment_size=1 << 20)
    keyset = Keyset(primary_key_id=22, keys=(large, small))
    for key, size in ((small, 50_000), (small, 3), (large, 3 << 20), (large, 0)):
        data = os.urandom(size)
        (tmp_path / "plain").write_bytes(data)
        encrypt_file(tmp_path / "plain", tmp_path / "sealed", key)
        assert decrypt_file(tmp_path / "sealed", tmp_path / "opened", keyset).plaintext_bytes \
            == size
        assert (tmp_path / "opened").read_bytes() == data


@pytest.mark.parametrize("size", [0, 1, 4096, 200_000])
def test_s4_sealed_with_knows_the_project_s_own_ciphertext_and_nothing_else(
        tmp_path: Path, size: int) -> None:
    """The storage rules skip files sealed with the project's key; a plaintext, another
    project's ciphertext, a file that merely starts like a header, or a ciphertext with
    plaintext appended is not one."""
    keyset, other = new_keyset(segment_size=4096), new_keyset(segment_size=4096)
    plain, sealed = tmp_path / "plain", tmp_path / "sealed"
    plain.write_bytes(os.urandom(size))
    encrypt_file(plain, sealed, keyset.primary)

    def check(path: Path, ks: Keyset) -> bool:
        with path.open("rb") as handle:
            handle.seek(3)
            answer = sealed_with(handle.fileno(), ks, AD)
            assert handle.tell() == 3  # the offset is left alone
            return answer

    assert check(sealed, keyset)
    assert not check(sealed, other)
    assert not check(plain, keyset)
    looks_like = tmp_path / "looks_like"
    looks_like.write_bytes(sealed.read_bytes()[:41] + os.urandom(200))
    assert not check(looks_like, keyset)
    (tmp_path / "empty").write_bytes(b"")
    assert not check(tmp_path / "empty", keyset)
    # A sealed file with plaintext appended is not sealed: its last segment says so.
    appended = tmp_path / "appended"
    appended.write_bytes(sealed.read_bytes() + b"lopenr;vekt\n1;70\n")
    assert not check(appended, keyset)
