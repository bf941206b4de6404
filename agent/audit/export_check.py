"""Checking an audit export where it was taken: no database, no daemon, the public key alone.

In order: the manifest's signature and key, the embedded checkpoint's signature and key, then
every row, recomputing its hash and, for a whole chain (trail or project mode), its links from
the predecessor the manifest names; the ends of the rows against the manifest and the
checkpoint; the count; and last the file's size and SHA-256, which catch whatever still chains
(an added copy of a genuine event, a changed line ending). The first problem is reported with
the row and event it concerns and its kind. MACs cannot be checked here (the key never leaves
the key store); the signed checkpoint and manifest stand in for them. docs/audit-format.md
describes the same steps for anyone writing their own verifier.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from agent.audit.chain import format_time
from agent.audit.checkpoint import ChainHead, Checkpoint, parse_checkpoint_document
from agent.audit.export_rows import (
    CSV_HEADER,
    MAX_LINE_BYTES,
    MalformedRow,
    Row,
    csv_records,
    parse_csv_record,
    parse_jsonl_line,
)
from agent.audit.keys import key_id_of, signature_valid
from agent.audit.manifest import Manifest, parse_manifest_document
from agent.audit.verify import EMPTY_CHAIN, ChainVerifier

_SEQ, _TIME, _ACTOR, _ACTION, _PROJECT, _PROJECT_SEQ, _HASH = 0, 1, 3, 4, 5, 6, 14


@dataclass(frozen=True, slots=True)
class ExportReport:
    """What the check found: ``problem`` is None when the export is intact."""

    count: int
    manifest: Manifest | None = None
    checkpoint: Checkpoint | None = None
    problem: str | None = None
    kind: str | None = None
    row: int | None = None
    seq: int | None = None

    @property
    def ok(self) -> bool:
        return self.problem is None


class _Failure(Exception):
    def __init__(self, kind: str, message: str, row: int | None = None,
                 seq: int | None = None) -> None:
        super().__init__(message)
        self.kind, self.message, self.row, self.seq = kind, message, row, seq


def _where(row: int, seq: int | None) -> str:
    return f"row {row}" + (f" (event {seq})" if seq is not None else "")


class _HashedLines:
    """The file's lines, hashed and counted as read, however far the check gets."""

    def __init__(self, handle: IO[bytes]) -> None:
        self._handle = handle
        self.digest = hashlib.sha256()
        self.size = 0

    def __iter__(self) -> Iterator[bytes]:
        while line := self._handle.readline(MAX_LINE_BYTES + 1):
            self.digest.update(line)
            self.size += len(line)
            if len(line) > MAX_LINE_BYTES:
                raise MalformedRow("a line longer than any event")
            yield line

    def drain(self) -> None:
        while chunk := self._handle.read(1 << 20):
            self.digest.update(chunk)
            self.size += len(chunk)


def _signed_parts(manifest_text: bytes, key: Ed25519PublicKey) -> tuple[Manifest, Checkpoint]:
    mine = key_id_of(key)
    try:
        manifest, payload, signature = parse_manifest_document(manifest_text)
    except ValueError as error:
        raise _Failure("manifest", f"the manifest is unusable: {error}") from None
    if not signature_valid(key, signature, payload.encode("ascii", "replace")):
        if manifest.key_id != mine:
            raise _Failure("wrong_key", f"the manifest was signed by key {manifest.key_id}, not "
                           f"by this public key ({mine}): use the public key of the enclave "
                           "that made the export")
        raise _Failure("manifest_edited", "the manifest's signature does not hold: the "
                       "manifest was edited after the export")
    try:
        signed = parse_checkpoint_document(json.dumps(manifest.checkpoint))
    except ValueError as error:
        raise _Failure("manifest", f"the manifest's checkpoint is unusable: {error}") from None
    if not signature_valid(key, signed.signature, signed.payload.encode("ascii", "replace")):
        raise _Failure("checkpoint", "the checkpoint in the manifest is not signed by this key")
    if signed.checkpoint.key_id != mine or manifest.key_id != mine:
        raise _Failure("checkpoint", "the manifest or its checkpoint names another key")
    if manifest.through_seq > signed.checkpoint.trail.seq:
        raise _Failure("checkpoint", f"the checkpoint covers events up to "
                       f"{signed.checkpoint.trail.seq}, not the export's {manifest.through_seq}")
    return manifest, signed.checkpoint


def _verifier(manifest: Manifest) -> ChainVerifier:
    first = manifest.first
    if manifest.mode == "trail":
        start = EMPTY_CHAIN if first is None else ChainHead(first.seq - 1, first.prev_hash or "")
        return ChainVerifier("trail", mac_key=None, start=start)
    if manifest.mode == "project":
        start = EMPTY_CHAIN
        if first is not None and first.project_seq is not None:
            start = ChainHead(first.project_seq - 1, first.project_prev_hash or "")
        return ChainVerifier("project", mac_key=None, start=start,
                             project=manifest.filters.project)
    return ChainVerifier("rows", mac_key=None)


class _Scope:
    """What may be in this export: its range of events and its filters (signed in the
    manifest), so a row from elsewhere is named as added even where no chain links it."""

    def __init__(self, manifest: Manifest) -> None:
        filters = manifest.filters
        self.first = manifest.first.seq if manifest.first is not None else None
        self.last = manifest.last.seq if manifest.last is not None else 0
        self.fields = tuple((name, index, wanted) for name, index, wanted in (
            ("project", _PROJECT, filters.project), ("user", _ACTOR, filters.user),
            ("action", _ACTION, filters.action)) if wanted is not None)
        self.since = None if filters.since is None else format_time(filters.since)
        self.until = None if filters.until is None else format_time(filters.until)

    def outside(self, row: Row) -> str | None:
        seq = row[_SEQ]
        if self.first is not None and seq < self.first:
            return f"lies before the export's first event {self.first}"
        if seq > self.last:
            return f"lies beyond the export's last event {self.last}"
        for name, index, wanted in self.fields:
            if row[index] != wanted:
                return f"is not of the exported {name} {wanted}"
        moment = row[_TIME]  # canonical times sort as text
        if (self.since is not None and moment < self.since) or (
                self.until is not None and moment > self.until):
            return "lies outside the exported time range"
        return None


def _rows(lines: _HashedLines, manifest: Manifest) -> Iterator[tuple[int, Row]]:
    """(row number, row) for every event line; a malformed one fails naming its row."""
    number = 0
    parse = parse_csv_record if manifest.file_format == "csv" else parse_jsonl_line
    try:
        records: Iterator[bytes] = iter(lines)
        if manifest.file_format == "csv":
            records = csv_records(lines)
            if next(records, b"") != CSV_HEADER.encode("ascii"):
                raise _Failure("malformed", "the first line is not the export's CSV header")
        for record in records:
            number += 1
            yield number, parse(record)
    except MalformedRow as error:
        raise _Failure("malformed", f"row {number or 1} is not an export row: {error}",
                       row=number or 1) from None


class _Feed:
    """The rows as the verifier reads them, each first held against the export's scope; it
    remembers the last rows' numbers, to name the row the verifier's damage is about."""

    def __init__(self, rows: Iterator[tuple[int, Row]], manifest: Manifest,
                 checkpoint: Checkpoint) -> None:
        self._rows, self._manifest, self._sealed = rows, manifest, checkpoint.trail
        self._scope = _Scope(manifest)
        self.recent: dict[int, int] = {}
        self.last: Row | None = None
        self.count = 0

    def __iter__(self) -> Iterator[Row]:
        first = self._manifest.first
        for number, row in self._rows:
            seq = row[_SEQ]
            if number == 1 and first is not None and seq > first.seq:
                raise _Failure("deleted", f"{_where(number, seq)}: the export starts with event "
                               f"{first.seq}; the rows before this one were removed",
                               number, seq)
            reason = self._scope.outside(row)
            if reason is not None:
                raise _Failure("inserted", f"{_where(number, seq)} {reason}: it was added",
                               number, seq)
            if seq == self._sealed.seq and row[_HASH] != self._sealed.head:
                raise _Failure("changed", f"{_where(number, seq)} is not the event the "
                               "checkpoint sealed: it was rewritten with a hash to match",
                               number, seq)
            if len(self.recent) > 8:
                self.recent.clear()
            self.recent[seq] = number
            self.last, self.count = row, number
            yield row


def _check_rows(lines: _HashedLines, manifest: Manifest, checkpoint: Checkpoint) -> int:
    verifier = _verifier(manifest)
    feed = _Feed(_rows(lines, manifest), manifest, checkpoint)
    verifier.feed(feed)
    damage = verifier.finish().damage
    if damage is not None:
        number = feed.recent.get(damage.seq, feed.count) if damage.seq is not None else feed.count
        raise _Failure(damage.kind.value, f"row {number}: {damage.message}", number, damage.seq)
    _check_end(feed.last, feed.count, manifest, checkpoint)
    return feed.count


def _check_end(last: Row | None, count: int, manifest: Manifest, checkpoint: Checkpoint) -> None:
    """The rows end where the manifest says, and a whole chain where the checkpoint does."""
    end = manifest.last
    if end is None:
        if last is not None:
            raise _Failure("inserted", "the manifest lists no events, yet the file has some")
        return
    if last is None or last[_SEQ] < end.seq:
        after = "no event" if last is None else f"event {last[_SEQ]}"
        raise _Failure("deleted", f"the export ends with {after}, but its manifest with event "
                       f"{end.seq}: its last rows were removed", count + 1)
    if last[_HASH] != end.hash:
        raise _Failure("changed", f"{_where(count, last[_SEQ])} is not the last event the "
                       "manifest names: it was rewritten with a hash to match", count, last[_SEQ])
    head = checkpoint.trail if manifest.mode == "trail" else (
        checkpoint.projects.get(manifest.filters.project or "")
        if manifest.mode == "project" else None)
    position = last[_SEQ] if manifest.mode == "trail" else last[_PROJECT_SEQ]
    if head is not None and head.seq == position and head.head != last[_HASH]:
        raise _Failure("changed", f"{_where(count, last[_SEQ])} is not the event the "
                       "checkpoint sealed last: the chain was rewritten", count, last[_SEQ])


def check_export(data: IO[bytes], data_name: str, manifest_text: bytes,
                 key: Ed25519PublicKey) -> ExportReport:
    """Check the export read from ``data`` (named ``data_name``) against its manifest."""
    manifest: Manifest | None = None
    checkpoint: Checkpoint | None = None
    lines = _HashedLines(data)
    try:
        manifest, checkpoint = _signed_parts(manifest_text, key)
        other = (f"; the manifest describes '{manifest.file_name}', not '{data_name}': "
                 "is it this file's manifest?" if manifest.file_name != data_name else "")
        try:
            count = _check_rows(lines, manifest, checkpoint)
        except _Failure as failure:
            failure.message += other
            raise
        if count != manifest.count:
            raise _Failure("inserted" if count > manifest.count else "deleted",
                           f"the file holds {count} events, its manifest {manifest.count}"
                           + other)
        lines.drain()
        if (lines.size, lines.digest.hexdigest()) != (manifest.file_bytes, manifest.file_sha256):
            raise _Failure("changed", "the file's SHA-256 is not the manifest's, although every "
                           "event checks: the file was changed after the export" + other)
    except _Failure as failure:
        return ExportReport(0, manifest, checkpoint, failure.message, failure.kind,
                            failure.row, failure.seq)
    return ExportReport(count, manifest, checkpoint)
