"""Streaming Tink's segment format between file descriptors in constant memory (S3).

Memory is a handful of segment-sized buffers allocated once per stream, whatever the file's
size: reads go straight into them (``os.readv``), AES-GCM seals and opens into them
(``encrypt_into``/``decrypt_into``) and writes go out of them through memoryviews, so no
segment is copied on the way. Short reads and short writes are carried on until done.

A segment's plaintext is written only after it authenticated, and a segment is opened only
once the next read has shown whether the file ends after it: the last-flag check that
catches truncation and appended data happens before anything of that segment is released.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from secrets import token_bytes

from agent.crypto.keyset import Keyset, StreamingKey
from agent.crypto.streaming import SegmentDecryptor, SegmentEncryptor, header_size_for
from agent.errors import DecryptionFailed

_HINT = "restore the file from a backup"


@dataclass(frozen=True)
class StreamResult:
    plaintext_bytes: int
    ciphertext_bytes: int


class _Source:
    """Reads a descriptor into caller buffers; bytes handed back with ``unread`` come first."""

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._pending = memoryview(b"")

    def unread(self, view: memoryview) -> None:
        self._pending = view

    def fill(self, view: memoryview) -> int:
        """Fills ``view`` unless the input ends first; returns how much it holds."""
        filled = 0
        if self._pending:
            filled = min(len(self._pending), len(view))
            view[:filled] = self._pending[:filled]
            self._pending = self._pending[filled:]
        while filled < len(view):
            got = os.readv(self._fd, [view[filled:]])
            if got == 0:
                break
            filled += got
        return filled


def _write_all(fd: int, view: memoryview) -> None:
    while view:
        view = view[os.write(fd, view):]


def encrypt_stream(src_fd: int, dst_fd: int, key: StreamingKey, associated_data: bytes, *,
                   progress: Callable[[int], None] | None = None,
                   random: Callable[[int], bytes] = token_bytes) -> StreamResult:
    """Encrypts everything ``src_fd`` yields into ``dst_fd`` as one Tink ciphertext.
    ``progress`` gets the plaintext bytes encrypted so far after each segment."""
    encryptor = SegmentEncryptor(key, associated_data, random=random)
    layout = encryptor.layout
    source = _Source(src_fd)
    current = memoryview(bytearray(layout.plaintext))
    ahead = memoryview(bytearray(layout.plaintext))
    out = memoryview(bytearray(layout.segment_size))
    _write_all(dst_fd, memoryview(encryptor.header))
    plaintext_total, ciphertext_total = 0, len(encryptor.header)
    full = layout.first_plaintext
    size = source.fill(current[:full])
    while True:
        # A short segment means the input ended; a full one needs a look ahead to know.
        ahead_size = source.fill(ahead[:layout.plaintext]) if size == full else 0
        last = ahead_size == 0
        sealed = encryptor.seal_into(current[:size], out, last)
        _write_all(dst_fd, out[:sealed])
        plaintext_total += size
        ciphertext_total += sealed
        if progress is not None:
            progress(plaintext_total)
        if last:
            return StreamResult(plaintext_total, ciphertext_total)
        current, ahead = ahead, current
        size, full = ahead_size, layout.plaintext


def decrypt_stream(src_fd: int, dst_fd: int | None, keyset: Keyset, associated_data: bytes, *,
                   progress: Callable[[int], None] | None = None) -> StreamResult:
    """Decrypts the Tink ciphertext ``src_fd`` yields into ``dst_fd`` (None: authenticate
    only). Raises DecryptionFailed at the first segment that does not authenticate, having
    written only the plaintext of the segments before it. ``progress`` gets the ciphertext
    bytes authenticated so far."""
    source = _Source(src_fd)
    length_byte = bytearray(1)
    if source.fill(memoryview(length_byte)) == 0:
        raise DecryptionFailed("the file is empty: a Tink ciphertext has at least a header "
                               "and one segment (truncated?)", rule="S3", hint=_HINT)
    header = bytearray(header_size_for(keyset, length_byte[0]))
    header[0] = length_byte[0]
    if 1 + source.fill(memoryview(header)[1:]) < len(header):
        raise DecryptionFailed("the file is truncated: it ends inside the header", rule="S3",
                               hint=_HINT)
    decryptor = SegmentDecryptor(keyset, associated_data, header)
    segment_size = max(key.segment_size for key in keyset.keys)
    first = memoryview(bytearray(decryptor.first_read_size))
    out = memoryview(bytearray(segment_size))
    first_size = source.fill(first)
    used, plain = decryptor.open_first_into(first[:first_size],
                                            first_size < len(first), out)
    if dst_fd is not None:
        _write_all(dst_fd, out[:plain])
    plaintext_total, ciphertext_total = plain, len(header) + used
    if progress is not None:
        progress(ciphertext_total)
    if first_size < len(first) and used == first_size:
        return StreamResult(plaintext_total, ciphertext_total)
    source.unread(first[used:first_size])
    assert decryptor.layout is not None
    full = decryptor.layout.segment_size
    current = memoryview(bytearray(full))
    ahead = memoryview(bytearray(full))
    size = source.fill(current)
    while True:
        ahead_size = source.fill(ahead) if size == full else 0
        last = ahead_size == 0
        plain = decryptor.open_into(current[:size], last, out)
        if dst_fd is not None:
            _write_all(dst_fd, out[:plain])
        plaintext_total += plain
        ciphertext_total += size
        if progress is not None:
            progress(ciphertext_total)
        if last:
            return StreamResult(plaintext_total, ciphertext_total)
        current, ahead = ahead, current
        size = ahead_size


def sealed_with(fd: int, keyset: Keyset, associated_data: bytes) -> bool:
    """Is the file at ``fd`` a whole ciphertext of this project's key: every segment
    authentic, the last one marked last? Then Vokter sealed it. The whole file, not its first
    segment: a sealed file with plaintext appended (``cat old.tink ids.csv > x.csv``) must not
    pass for sealed. Authenticating without writing runs at several GB/s. Read through a
    descriptor of its own, so ``fd``'s offset is left alone."""
    try:
        own = os.open(f"/proc/self/fd/{fd}", os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        decrypt_stream(own, None, keyset, associated_data)
    except DecryptionFailed:
        return False
    finally:
        os.close(own)
    return True
