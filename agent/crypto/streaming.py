"""Tink's AES-GCM-HKDF streaming AEAD, segment by segment, without I/O (S3).

The wire format (docs/format.md has it byte by byte) is Tink's, so that stock Tink in any
language decrypts our files and we decrypt theirs:

    header   = header length (1 byte) || salt (derived-key size) || nonce prefix (7 bytes)
    file key = HKDF-SHA256(ikm = key value, salt = salt, info = associated data)
    segment i: AES-GCM(file key, nonce = prefix || i as 4 bytes big-endian || last flag byte,
               no associated data), ciphertext || 16-byte tag

The first ciphertext segment shares the segment size with the header. Every segment but the
last is full; the last is shorter or full, and empty only for an empty file. The last-flag in
the nonce is what makes truncation at a segment boundary and appended segments detectable.

``SegmentEncryptor`` and ``SegmentDecryptor`` work on buffers the caller owns (``stream_io``
feeds them from descriptors), so they allocate nothing per segment beyond the nonce. A
failure raises DecryptionFailed naming the segment and, where it can be told, what happened.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass
from secrets import token_bytes

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from agent.crypto.keyset import NONCE_PREFIX_SIZE, TAG_SIZE, Keyset, StreamingKey, header_size
from agent.errors import DecryptionFailed

MAX_SEGMENTS = 2**32
_SEGMENT_NUMBER = struct.Struct(">IB")
_HINT = "keep the damaged file for inspection and restore it from a backup"


@dataclass(frozen=True)
class Layout:
    """Where the segment boundaries of a file under one key fall."""

    segment_size: int
    header_size: int

    @classmethod
    def of(cls, key: StreamingKey) -> Layout:
        return cls(key.segment_size, header_size(key.derived_key_size))

    @property
    def first_ciphertext(self) -> int:
        """Ciphertext bytes of segment 0 (after the header)."""
        return self.segment_size - self.header_size

    @property
    def first_plaintext(self) -> int:
        return self.first_ciphertext - TAG_SIZE

    @property
    def plaintext(self) -> int:
        """Plaintext bytes of every later full segment."""
        return self.segment_size - TAG_SIZE

    def ciphertext_size(self, plaintext_size: int) -> int:
        """The file size Tink writes for ``plaintext_size`` bytes."""
        if plaintext_size <= self.first_plaintext:
            return self.header_size + plaintext_size + TAG_SIZE
        rest = plaintext_size - self.first_plaintext
        segments = 1 + -(-rest // self.plaintext)
        return self.header_size + plaintext_size + segments * TAG_SIZE


def derive_file_key(key: StreamingKey, salt: bytes, associated_data: bytes) -> bytes:
    """The per-file AES key: HKDF-SHA256 over the key value, salted by the header."""
    return HKDF(algorithm=SHA256(), length=key.derived_key_size, salt=salt,
                info=associated_data).derive(key.key_value)


def segment_nonce(prefix: bytes, index: int, last: bool) -> bytes:
    return prefix + _SEGMENT_NUMBER.pack(index, 1 if last else 0)


def _failed(message: str, hint: str = _HINT) -> DecryptionFailed:
    return DecryptionFailed(message, rule="S3", hint=hint)


class SegmentEncryptor:
    """Seals one file's segments in order under a fresh salt and nonce prefix."""

    def __init__(self, key: StreamingKey, associated_data: bytes, *,
                 random: Callable[[int], bytes] = token_bytes) -> None:
        self.layout = Layout.of(key)
        salt = random(key.derived_key_size)
        self._prefix = random(NONCE_PREFIX_SIZE)
        self.header = bytes([self.layout.header_size]) + salt + self._prefix
        self._aead = AESGCM(derive_file_key(key, salt, associated_data))
        self._index = 0
        self._done = False

    def __repr__(self) -> str:
        return f"SegmentEncryptor(segment={self._index}, layout={self.layout})"

    def seal_into(self, plaintext: bytes | bytearray | memoryview, out: memoryview,
                  last: bool) -> int:
        """Seals the next segment into ``out``; returns the ciphertext length. Every segment
        but the last must be full, as Tink's readers expect."""
        if self._done:
            raise ValueError("the last segment was already sealed")
        if self._index >= MAX_SEGMENTS:
            raise ValueError("a Tink stream holds at most 2**32 segments")
        full = self.layout.first_plaintext if self._index == 0 else self.layout.plaintext
        size = len(plaintext)
        if size > full or (not last and size != full):
            raise ValueError(f"segment {self._index} must hold {full} bytes, not {size}")
        nonce = segment_nonce(self._prefix, self._index, last)
        written: int = self._aead.encrypt_into(nonce, plaintext, None, out[:size + TAG_SIZE])
        self._index += 1
        self._done = last
        return written


def header_size_for(keyset: Keyset, length_byte: int) -> int:
    """The header length a file announces, checked against what the keyset's keys write."""
    sizes = {header_size(key.derived_key_size) for key in keyset.keys}
    if length_byte not in sizes:
        raise _failed(f"the header is damaged: its length byte says {length_byte}, "
                      f"this project's keys write {' or '.join(map(str, sorted(sizes)))}; "
                      "the file was changed or is not a Tink ciphertext")
    return length_byte


class SegmentDecryptor:
    """Opens one file's segments in order. Segment 0 picks the key, as Tink's wrapper does:
    every key of the keyset whose header matches is tried on it."""

    def __init__(self, keyset: Keyset, associated_data: bytes,
                 header: bytes | bytearray | memoryview) -> None:
        size = header_size_for(keyset, header[0])
        if len(header) != size:
            raise ValueError("the header must be passed whole")
        self._header = bytes(header)
        self._candidates = [key for key in keyset.keys
                            if header_size(key.derived_key_size) == size]
        self._associated_data = associated_data
        self._aead: AESGCM | None = None
        self._prefix = self._header[size - NONCE_PREFIX_SIZE:]
        self.layout: Layout | None = None
        self._index = 0
        self._done = False

    def __repr__(self) -> str:
        return f"SegmentDecryptor(segment={self._index}, layout={self.layout})"

    @property
    def first_read_size(self) -> int:
        """How many bytes after the header to give ``open_first_into``: the longest first
        segment of any candidate key, plus one to tell whether more follows."""
        return max(Layout.of(key).first_ciphertext for key in self._candidates) + 1

    def open_first_into(self, data: memoryview, at_end: bool, out: memoryview) -> tuple[int, int]:
        """Opens segment 0 from ``data`` (``first_read_size`` bytes, fewer only at the end of
        the file); returns (ciphertext bytes used, plaintext bytes written to ``out``)."""
        salt = self._header[1:len(self._header) - NONCE_PREFIX_SIZE]
        for key in self._candidates:
            layout = Layout.of(key)
            used = min(len(data), layout.first_ciphertext)
            last = at_end and len(data) <= layout.first_ciphertext
            if used < TAG_SIZE:
                continue
            aead = AESGCM(derive_file_key(key, salt, self._associated_data))
            if _open(aead, self._prefix, 0, data[:used], last, out):
                self._aead, self.layout = aead, layout
                self._index, self._done = 1, last
                return used, used - TAG_SIZE
            if _open(aead, self._prefix, 0, data[:used], not last, out):
                raise self._misplaced(0, last)
        if at_end and len(data) < TAG_SIZE:
            raise _failed(f"the file is truncated: it ends {len(data)} bytes after the header, "
                          "inside segment 0")
        raise _failed("segment 0 does not authenticate under any of this project's keys: the "
                      "header or segment 0 was changed, the file was truncated or had data "
                      "appended, or it was not encrypted under this project's key",
                      hint="check that the file belongs to this project; if it does, restore "
                      "it from a backup")

    def open_into(self, segment: memoryview, last: bool, out: memoryview) -> int:
        """Opens the next segment after segment 0 into ``out``; returns the plaintext length.
        ``last`` says the file ends after it. Nothing is written to ``out`` that a caller may
        release unless this returns."""
        if self._aead is None or self.layout is None:
            raise ValueError("segment 0 must be opened first")
        index = self._index
        if self._done:
            raise _failed(f"data appended: the file goes on after segment {index - 1}, "
                          "which is marked as the last")
        if index >= MAX_SEGMENTS:
            raise _failed("the file has more segments than a Tink stream can hold")
        if len(segment) > self.layout.segment_size or (
                not last and len(segment) != self.layout.segment_size):
            raise ValueError("segments after the first are passed whole")
        if len(segment) < TAG_SIZE:
            raise _failed(f"the file is truncated: it ends {len(segment)} bytes into segment "
                          f"{index}, shorter than its tag")
        if _open(self._aead, self._prefix, index, segment, last, out):
            self._index, self._done = index + 1, last
            return len(segment) - TAG_SIZE
        if _open(self._aead, self._prefix, index, segment, not last, out):
            raise self._misplaced(index, last)
        if last:
            raise _failed(f"segment {index}, the last, does not authenticate: the file was "
                          "truncated inside it, data was appended to it, or it was changed")
        raise _failed(f"segment {index} does not authenticate: it was changed, moved from "
                      "another place in the file, or copied in from another file")

    def _misplaced(self, index: int, read_as_last: bool) -> DecryptionFailed:
        """The segment is genuine but its last-flag disagrees with where the file ends."""
        if read_as_last:
            return _failed(f"the file is truncated: it ends after segment {index}, "
                           "which is not the last segment it was written with")
        return _failed(f"data appended: segment {index} is the last one written, but the "
                       "file goes on after it")


def _open(aead: AESGCM, prefix: bytes, index: int, segment: memoryview, last: bool,
          out: memoryview) -> bool:
    try:
        aead.decrypt_into(segment_nonce(prefix, index, last), segment, None,
                          out[:len(segment) - TAG_SIZE])
    except InvalidTag:
        return False
    return True
