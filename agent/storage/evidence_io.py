"""Gathering the evidence about one open file: sealed or not, its tables and text, judged by
the detectors (S4, S5, S7, D2, D5).

The shell side of the storage rules' functional core: it reads (through the format readers,
by position, from a descriptor the daemon opened without following a symlink) and hands the
pure detectors plain rows and text. What comes out holds counts and column names only.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date

from agent.crypto.keyset import Keyset, header_size
from agent.crypto.stream_io import sealed_with
from agent.crypto.wrapping import file_associated_data
from agent.storage.evidence import judge_table, may_hold_identity_numbers, scan_text
from agent.storage.formats import Content, Table, Text, UnreadableFile, read_content
from agent.storage.formats.sniff import SAMPLE_SIZE, binary_kind
from agent.storage.linkage import judge_linkage
from agent.storage.rules import FileEvidence, TableEvidence

#: Bytes per read when a file is scanned as raw text (a damaged or unknown format).
RAW_CHUNK = 1 << 20
#: Bytes per read of the quick check for candidates: large reads, few system calls.
QUICK_CHUNK = 8 << 20
#: A column is judged from its first this many non-empty values (see ``judge_table``).
DECIDE_AFTER = 100
_HEADER_LENGTHS = frozenset({header_size(16), header_size(32)})
_UTF16_OR_32 = (b"\xff\xfe", b"\xfe\xff", b"\x00\x00\xfe\xff")


@dataclass(frozen=True, slots=True)
class Gathered:
    evidence: FileEvidence
    #: The header of each table, for the data-minimisation rules (D2, D5).
    headers: tuple[tuple[str, ...], ...]
    #: Why the content was read as raw bytes ("" when its format was read).
    fallback: str = ""
    #: The quick check found no candidate at all: the content was not parsed (no headers).
    quick: bool = False


def fingerprint_of(info: os.stat_result) -> str:
    """The state of a file that a verdict is about: a new write makes a new fingerprint. No
    device number: on NFS, btrfs or overlayfs it changes from one mount to the next, and every
    finding would come back after a reboot."""
    return f"{info.st_ino}:{info.st_size}:{info.st_mtime_ns}"


def _raw_chunks(fd: int) -> Iterator[str]:
    offset = 0
    while True:
        block = os.pread(fd, RAW_CHUNK, offset)
        if not block:
            return
        offset += len(block)
        yield block.decode("latin-1")


def _candidates_anywhere(fd: int) -> bool:
    """Could any byte of this file be part of an identity number? A text file in an
    ASCII-compatible encoding answers at memory speed; anything else (binary formats store
    numbers as binary; UTF-16 spells digits in two bytes) is assumed to, and is parsed."""
    offset, carry = 0, b""
    while True:
        block = os.pread(fd, QUICK_CHUNK, offset)
        if not block:
            return False
        if offset == 0:
            sample = block[:SAMPLE_SIZE]
            if binary_kind(sample) is not None or sample.startswith(_UTF16_OR_32) or \
                    b"\0" in sample:
                return True
        if may_hold_identity_numbers(carry + block if carry else block):
            return True
        offset += len(block)
        carry = block[-12:]


def _table_evidence(table: Table, *, today: date, share: float) -> TableEvidence:
    verdict = judge_table(table.header, table.rows(), today=today, share=share,
                          decide_after=DECIDE_AFTER)
    linkage = None
    if verdict.identity_columns:
        found = judge_linkage(table.header, itertools.islice(table.rows(), verdict.rows),
                              verdict)
        if found is not None:
            linkage = (found.identity_column, found.serial_column)
    return TableEvidence(
        name=table.name,
        rows=verdict.rows,
        identity_columns=verdict.identity_columns,
        identity_values=sum(c.valid for c in verdict.columns if c.is_identity_column),
        linkage=linkage,
        complete=verdict.complete,
    )


def _may_be_sealed(fd: int) -> bool:
    """A sealed file starts with its header's length (Tink's streaming AEAD, AES-128 or -256):
    any other first byte and there is no need to fetch, unwrap and try the project's key."""
    first = os.pread(fd, 1, 0)
    return bool(first) and first[0] in _HEADER_LENGTHS


def gather(fd: int, *, project: str, zone: str, path: str, info: os.stat_result,
           keyset: Callable[[], Keyset | None], today: date, share: float) -> Gathered:
    """Everything the rules need about the open regular file ``fd``. ``keyset()`` gives the
    project's keyset, asked only for a file that may be sealed; None means the key was
    destroyed: nothing of it can be sealed any more, nor checked."""
    name = os.path.basename(path)
    fingerprint = fingerprint_of(info)
    if _may_be_sealed(fd):
        project_keyset = keyset()
        if project_keyset is not None and sealed_with(fd, project_keyset,
                                                      file_associated_data(project)):
            return Gathered(FileEvidence(project, zone, path, fingerprint, sealed=True), ())
    if not _candidates_anywhere(fd):
        return Gathered(FileEvidence(project, zone, path, fingerprint, sealed=False), (),
                        quick=True)
    try:
        contents = read_content(fd, name)
        if not contents and info.st_size:
            # A binary format not read here: numbers stored as text in it are still found.
            return _judged(project, zone, path, fingerprint, [Text(lambda: _raw_chunks(fd))],
                           today, share, "format not known: scanned as raw bytes")
        return _judged(project, zone, path, fingerprint, contents, today, share, "")
    except UnreadableFile as error:
        # Damaged, perhaps only half-way through: judged again from its raw bytes.
        return _judged(project, zone, path, fingerprint, [Text(lambda: _raw_chunks(fd))],
                       today, share, error.message)


def _judged(project: str, zone: str, path: str, fingerprint: str,
            contents: list[Content], today: date, share: float, fallback: str) -> Gathered:
    tables: list[TableEvidence] = []
    headers: list[tuple[str, ...]] = []
    text_hits = 0
    for content in contents:
        if isinstance(content, Table):
            tables.append(_table_evidence(content, today=today, share=share))
            headers.append(content.header)
            # Names are text too: a one-line note sniffed as a table, or a table laid out
            # with one person per column, holds its numbers in the header.
            text_hits += scan_text(["\n".join(content.header)], today=today).hits
        else:
            text_hits += scan_text(content.chunks(), today=today).hits
    evidence = FileEvidence(project, zone, path, fingerprint, sealed=False,
                            tables=tuple(tables), text_hits=text_hits)
    return Gathered(evidence, tuple(headers), fallback)
