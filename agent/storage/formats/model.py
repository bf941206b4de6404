"""What a file holds, as the storage rules judge it, and how the readers reach its bytes.

The daemon opens each file itself (O_NOFOLLOW, inside a zone) and hands the readers only the
descriptor: a reader that opened a path could be sent out of the zone by a symlink swapped in
after the check. Every read here is positional (``pread``), so two readers of the same file,
or a reader and the daemon, never move each other's file offset, and nothing closes the
descriptor it was given.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from agent.errors import VokterError


@dataclass(frozen=True, slots=True)
class Table:
    """Rows under named columns. ``rows`` reads the file afresh on each call, so a caller can
    judge a table twice (identity columns, then a linkage key) without holding it in memory."""

    name: str
    header: tuple[str, ...]
    rows: Callable[[], Iterator[tuple[str, ...]]]


@dataclass(frozen=True, slots=True)
class Text:
    """Running text, for single hits: a file with no columns to judge."""

    chunks: Callable[[], Iterator[str]]


Content = Table | Text


class UnreadableFile(VokterError):
    """A file that claims a format and breaks it (a truncated Parquet file, a broken zip).

    The message names the format and what is wrong, never a cell value; the caller decides
    what to do (the scanner falls back to the raw bytes)."""


#: Bytes each positional read asks for: large enough that a system call per read is cheap.
READ_SIZE = 1 << 20


class PositionalReader(io.RawIOBase):
    """A seekable file object over a descriptor it neither owns nor closes, with its own
    position. Libraries that want a file object (csv, zipfile, pyarrow, pyreadstat) get one of
    these instead of a path."""

    def __init__(self, fd: int) -> None:
        super().__init__()
        self._fd = fd
        self._position = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        count = os.preadv(self._fd, [buffer], self._position)
        self._position += count
        return count

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        if whence == os.SEEK_SET:
            position = offset
        elif whence == os.SEEK_CUR:
            position = self._position + offset
        elif whence == os.SEEK_END:
            position = os.fstat(self._fd).st_size + offset
        else:
            raise ValueError(f"unknown whence {whence}")
        if position < 0:
            raise OSError("seek before the start of the file")
        self._position = position
        return position

    def tell(self) -> int:
        return self._position


def open_bytes(fd: int) -> io.BufferedReader:
    """A buffered binary reader from the start of the file; closing it leaves ``fd`` open."""
    return io.BufferedReader(PositionalReader(fd), buffer_size=READ_SIZE)


def file_size(fd: int) -> int:
    return os.fstat(fd).st_size


def head(fd: int, size: int) -> bytes:
    """The first ``size`` bytes (fewer for a short file): what formats are recognised by."""
    return os.pread(fd, size, 0)
