"""CSV, TSV and plain text: the bulk of what lands in a data zone, so the lean path.

Rows come straight from the csv module over a buffered text stream: one list per record made
by C code, turned into a tuple by C code, blank records dropped by C code. Memory is bounded
by the longest record, never by the file, so a 1 GiB export streams.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Generator, Iterator

from agent.storage.formats.model import Table, Text, UnreadableFile, open_bytes

#: Text is handed on in chunks of this many characters.
CHUNK_CHARS = 1 << 20


def text_stream(fd: int, encoding: str) -> io.TextIOWrapper:
    # A cell that is not valid in the chosen encoding (a stray byte deep in a UTF-8 file)
    # becomes U+FFFD: what matters here are digits, and one bad byte must not hide a file.
    return io.TextIOWrapper(open_bytes(fd), encoding=encoding, errors="replace", newline="")


def _records(fd: int, encoding: str,
             delimiter: str) -> Generator[tuple[str, ...], None, None]:
    """Every non-blank record, the header first."""
    with text_stream(fd, encoding) as stream:
        try:
            yield from map(tuple, filter(None, csv.reader(stream, delimiter=delimiter)))
        except csv.Error as error:
            raise UnreadableFile(f"delimited text: not readable as records ({error})") from None


def _data_rows(fd: int, encoding: str, delimiter: str) -> Iterator[tuple[str, ...]]:
    records = _records(fd, encoding, delimiter)
    next(records, None)
    yield from records


def header(fd: int, encoding: str, delimiter: str) -> tuple[str, ...]:
    """The first record: all a caller that wants only the column names pays for."""
    records = _records(fd, encoding, delimiter)
    try:
        return next(records, ())
    finally:
        records.close()


def read_delimited(fd: int, encoding: str, delimiter: str) -> Table:
    return Table(name="", header=header(fd, encoding, delimiter),
                 rows=lambda: _data_rows(fd, encoding, delimiter))


def _chunks(fd: int, encoding: str) -> Iterator[str]:
    with text_stream(fd, encoding) as stream:
        while chunk := stream.read(CHUNK_CHARS):
            yield chunk


def read_text(fd: int, encoding: str) -> Text:
    return Text(chunks=lambda: _chunks(fd, encoding))


#: The longest cell read. A cell may hold a whole free-text answer, more than the csv
#: module's default 128 KiB; but a quote never closed would make the rest of the file one
#: cell, so there is a limit, and past it the file is unreadable as records. (The limit is
#: process-wide; nothing else in the daemon reads CSV.)
MAX_CELL = 64 * 1024 * 1024
csv.field_size_limit(MAX_CELL)
