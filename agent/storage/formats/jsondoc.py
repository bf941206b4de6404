"""JSON and JSON Lines: records are tables, anything else is text.

An array of objects, or JSON Lines of objects, is a table whose header is the keys of the
first objects (in the order they first appear). Any other JSON is text made of its string and
number leaves, one per line, so a number is judged as a value and not as part of a key.

A JSON array is read element by element (``raw_decode`` over a window of the stream), so a
large export of records streams like a CSV. A JSON document that is one object has no such
seam: it is parsed whole up to ``MAX_DOCUMENT`` bytes, and beyond that read as plain text.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Generator, Iterable, Iterator
from typing import Any

from agent.storage.formats.delimited import CHUNK_CHARS, read_text, text_stream
from agent.storage.formats.model import Table, Text, UnreadableFile, file_size
from agent.storage.formats.values import cell_text

#: How many records name the columns: keys first seen later are not columns.
HEADER_RECORDS = 100
MAX_DOCUMENT = 64 * 1024 * 1024
_DECODER = json.JSONDecoder()
_NOT_SPACE = re.compile(r"[^ \t\r\n]")


class _Cursor:
    """A position in a JSON text read in growing windows; what is behind it is dropped."""

    def __init__(self, stream: io.TextIOWrapper) -> None:
        self._stream = stream
        self.buffer = ""
        self.pos = 0
        self._eof = False

    def more(self) -> bool:
        """Read on: at least as much again as is buffered, so one long value costs a few
        retries, not one per chunk."""
        if self._eof:
            return False
        chunk = self._stream.read(max(CHUNK_CHARS, len(self.buffer) - self.pos))
        if not chunk:
            self._eof = True
            return False
        self.buffer, self.pos = self.buffer[self.pos:] + chunk, 0
        return True

    def peek(self) -> str:
        """The next character that is not white space; "" at the end."""
        while True:
            match = _NOT_SPACE.search(self.buffer, self.pos)
            if match is not None:
                self.pos = match.start()
                return self.buffer[self.pos]
            self.pos = len(self.buffer)
            if not self.more():
                return ""

    def value(self) -> Any:
        while True:
            try:
                value, end = _DECODER.raw_decode(self.buffer, self.pos)
            except json.JSONDecodeError:
                if self.more():
                    continue
                raise
            if end == len(self.buffer) and self.more():  # a number may go on past the window
                continue
            self.pos = end
            return value


def _not_json(error: json.JSONDecodeError | None = None) -> UnreadableFile:
    where = "" if error is None else f" (line {error.lineno}, column {error.colno})"
    return UnreadableFile(f"json: not valid JSON{where}")


def _array_items(fd: int, encoding: str, *,
                 other_json: bool = False) -> Generator[Any, None, None]:
    """The elements of a top-level array, one at a time; none when ``other_json`` says a
    document of another shape (an object) may be there instead."""
    with text_stream(fd, encoding) as stream:
        cursor = _Cursor(stream)
        try:
            start = cursor.peek()
            if start != "[":
                if other_json and start == "{":
                    return
                raise _not_json()
            cursor.pos += 1
            if cursor.peek() == "]":
                return
            while True:
                yield cursor.value()
                after = cursor.peek()
                if after == "]":
                    return
                if after != ",":
                    raise _not_json()
                cursor.pos += 1
                cursor.peek()
        except json.JSONDecodeError as error:
            raise _not_json(error) from None


def _json_lines(fd: int, encoding: str) -> Generator[Any, None, None]:
    with text_stream(fd, encoding) as stream:
        for number, line in enumerate(stream, start=1):
            if not line.strip():
                continue
            try:
                yield json.loads(line)
            except json.JSONDecodeError:
                raise UnreadableFile(f"json lines: line {number} is not JSON") from None


def _cell(value: Any) -> str:
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return cell_text(value)


def _header(records: Iterable[Any]) -> tuple[str, ...] | None:
    """The keys of the first records, or None when they are not all objects."""
    keys: dict[str, None] = {}
    seen = 0
    for record in records:
        if not isinstance(record, dict):
            return None
        keys.update(dict.fromkeys(record))
        seen += 1
        if seen == HEADER_RECORDS:
            break
    return tuple(keys) if seen else None


def _rows(records: Iterator[Any], header: tuple[str, ...]) -> Iterator[tuple[str, ...]]:
    for record in records:
        if isinstance(record, dict):
            yield tuple(_cell(record.get(key)) for key in header)


def _leaves(value: Any) -> Iterator[str]:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(reversed(item.values()))
        elif isinstance(item, list):
            stack.extend(reversed(item))
        elif isinstance(item, str | int | float) and not isinstance(item, bool):
            yield cell_text(item)


def _chunked(leaves: Iterator[str]) -> Iterator[str]:
    """Leaves joined one per line, handed on in chunks of about CHUNK_CHARS."""
    parts: list[str] = []
    size = 0
    for leaf in leaves:
        parts.append(leaf)
        size += len(leaf) + 1
        if size >= CHUNK_CHARS:
            yield "\n".join(parts) + "\n"
            parts, size = [], 0
    if parts:
        yield "\n".join(parts) + "\n"


def _array_leaves(fd: int, encoding: str) -> Iterator[str]:
    return _chunked(leaf for item in _array_items(fd, encoding) for leaf in _leaves(item))


def _document_leaves(fd: int, encoding: str) -> Iterator[str]:
    with text_stream(fd, encoding) as stream:
        try:
            document = json.load(stream)
        except json.JSONDecodeError as error:
            raise _not_json(error) from None
    return _chunked(_leaves(document))


def read_json(fd: int, encoding: str) -> Table | Text:
    """A JSON file: a table when it is an array of objects. Raises UnreadableFile when it
    is not JSON."""
    items = _array_items(fd, encoding)
    first: Any = None
    try:
        first = next(items, None)
        is_array = True
    except UnreadableFile:
        is_array = False
    finally:
        items.close()
    if is_array and isinstance(first, dict):
        header = _header(_array_items(fd, encoding))
        if header is not None:
            return Table(name="", header=header,
                         rows=lambda: _rows(_array_items(fd, encoding), header))
    if is_array:
        _check(_array_items(fd, encoding))
        return Text(chunks=lambda: _array_leaves(fd, encoding))
    if file_size(fd) > MAX_DOCUMENT:
        return read_text(fd, encoding)
    _check(_document_leaves(fd, encoding))
    return Text(chunks=lambda: _document_leaves(fd, encoding))


def _check(parsed: Iterator[Any]) -> None:
    """Parse once up front, so that text which only starts like JSON (a log line opening
    with "[") is known for what it is when the file is read, not halfway through a scan."""
    for _ in parsed:
        pass


def records_header(fd: int, encoding: str, *, lines: bool) -> tuple[str, ...] | None:
    """The header a JSON (``lines`` False) or JSON Lines file has as a table, or None when it
    is not one; reads only the first records. Raises UnreadableFile when they are not JSON."""
    records = (_json_lines(fd, encoding) if lines
               else _array_items(fd, encoding, other_json=True))
    try:
        return _header(records)
    finally:
        records.close()


def read_json_lines(fd: int, encoding: str) -> Table | Text:
    header = _header(_json_lines(fd, encoding))
    if header is None:
        return Text(chunks=lambda: _chunked(
            leaf for record in _json_lines(fd, encoding) for leaf in _leaves(record)))
    return Table(name="", header=header, rows=lambda: _rows(_json_lines(fd, encoding), header))
