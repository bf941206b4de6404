"""Audit events as export lines, and back (pure): CSV (RFC 4180) and JSON Lines.

Both carry every column the hash covers (``agent.audit.verify.COLUMNS``), so each event's hash
can be recomputed from the file alone. An absent field (None) and an empty text must stay
apart, because they hash apart: in JSON Lines absent is ``null``; in CSV every text is quoted
and absent is an empty, unquoted field, numbers are bare. The reader accepts exactly what the
writer writes; anything else is named as a malformed row, never guessed at.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Iterator
from json.encoder import encode_basestring as _s
from typing import Any

from agent.audit.manifest import DataFormat
from agent.audit.verify import COLUMNS

Row = tuple[Any, ...]
#: Columns that hold whole numbers; every other column holds text.
NUMBERS = frozenset({"seq", "actor_uid", "project_seq"})
#: Columns that may be absent: an event about no project has no project chain.
NULLABLE = frozenset({"project_id", "project_seq", "target", "rule", "project_prev_hash"})
CSV_HEADER = ",".join(COLUMNS) + "\r\n"
#: No event comes near this; a longer line is not an export line.
MAX_LINE_BYTES = 64 * 1024 * 1024
_IS_NUMBER = tuple(name in NUMBERS for name in COLUMNS)


def _q(text: str) -> str:
    return text.replace('"', '""')


def _qn(text: str | None) -> str:
    return "" if text is None else f'"{_q(text)}"'


def csv_line(row: Row) -> str:
    """One CSV record. Written out field by field (not with the csv module, which cannot
    tell absent from empty), in one expression: at a million events a call per field would
    cost more than reading them."""
    (seq, time, uid, actor, action, project, project_seq, target, outcome, rule, details,
     algorithm, prev, project_prev, digest, mac) = row
    number = "" if project_seq is None else project_seq
    return (
        f'{seq},"{_q(time)}",{uid},"{_q(actor)}","{_q(action)}",{_qn(project)},{number},'
        f'{_qn(target)},"{_q(outcome)}",{_qn(rule)},"{_q(details)}","{_q(algorithm)}",'
        f'"{_q(prev)}",{_qn(project_prev)},"{_q(digest)}","{_q(mac)}"\r\n'
    )


def jsonl_line(row: Row) -> str:
    """One JSON object, keys in column order; strings through the json module's own encoder."""
    (seq, time, uid, actor, action, project, project_seq, target, outcome, rule, details,
     algorithm, prev, project_prev, digest, mac) = row
    return (
        f'{{"seq":{seq},"time":{_s(time)},"actor_uid":{uid},"actor":{_s(actor)},'
        f'"action":{_s(action)},"project_id":{_n(project)},'
        f'"project_seq":{"null" if project_seq is None else project_seq},'
        f'"target":{_n(target)},"outcome":{_s(outcome)},"rule":{_n(rule)},'
        f'"details":{_s(details)},"hash_alg":{_s(algorithm)},"prev_hash":{_s(prev)},'
        f'"project_prev_hash":{_n(project_prev)},"hash":{_s(digest)},"mac":{_s(mac)}}}\n'
    )


def _n(text: str | None) -> str:
    return "null" if text is None else _s(text)


def line_writer(file_format: DataFormat) -> tuple[str, Callable[[Row], str]]:
    """The header (CSV) and the line of each row, for ``file_format``."""
    return (CSV_HEADER, csv_line) if file_format == "csv" else ("", jsonl_line)


# --- reading ------------------------------------------------------------------------------------


class MalformedRow(ValueError):
    """A line that is not one this export format writes."""


_CSV_FIELD = r'(?:"([^"]*(?:""[^"]*)*)"|([^",\r\n]*))'
_CSV_RECORD = re.compile(",".join([_CSV_FIELD] * len(COLUMNS)) + r"\r\n", re.DOTALL)


def _checked(values: list[Any]) -> Row:
    for name, value in zip(COLUMNS, values, strict=True):
        if value is None:
            if name not in NULLABLE:
                raise MalformedRow(f"{name} is missing")
        elif name in NUMBERS:
            if isinstance(value, bool) or not isinstance(value, int):
                raise MalformedRow(f"{name} is not a whole number")
        elif not isinstance(value, str):
            raise MalformedRow(f"{name} is not text")
    return tuple(values)


def parse_csv_record(record: bytes) -> Row:
    try:
        text = record.decode("utf-8")
    except UnicodeDecodeError:
        raise MalformedRow("not UTF-8") from None
    match = _CSV_RECORD.fullmatch(text)
    if match is None:
        raise MalformedRow(f"not {len(COLUMNS)} CSV fields ending in CRLF")
    groups = match.groups()
    values: list[Any] = []
    for index, is_number in enumerate(_IS_NUMBER):
        quoted, bare = groups[2 * index], groups[2 * index + 1]
        if quoted is not None:
            if is_number:
                raise MalformedRow(f"{COLUMNS[index]} is quoted; numbers are bare")
            values.append(quoted.replace('""', '"'))
        elif bare == "":
            values.append(None)
        elif is_number and bare.isascii() and bare.isdigit():
            values.append(int(bare))
        else:
            raise MalformedRow(f"{COLUMNS[index]} is neither quoted text nor a bare number")
    return _checked(values)


def parse_jsonl_line(line: bytes) -> Row:
    if not line.endswith(b"\n"):
        raise MalformedRow("the last line does not end with a line break")
    try:
        body = json.loads(line)
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError):
        raise MalformedRow("not JSON") from None
    if not isinstance(body, dict) or set(body) != set(COLUMNS):
        raise MalformedRow("not an object with exactly the export's columns")
    return _checked([body[name] for name in COLUMNS])


def csv_records(lines: Iterable[bytes]) -> Iterator[bytes]:
    """Whole CSV records: a quoted field may hold line breaks, so lines are joined while a
    quote is open (an odd number of quote characters so far)."""
    pending: list[bytes] = []
    quotes = 0
    size = 0
    for line in lines:
        pending.append(line)
        quotes += line.count(b'"')
        size += len(line)
        if quotes % 2 == 0:
            yield b"".join(pending)
            pending, quotes, size = [], 0, 0
        elif size > MAX_LINE_BYTES:
            raise MalformedRow("a quoted field never ends")
    if pending:
        yield b"".join(pending)
