"""The hash chain over audit events, and the MAC that seals each link (pure).

Each event's hash covers a canonical, length-prefixed encoding of its fields, the hash of the
event before it in the whole trail (``prev_hash``) and, for an event about a project, the hash
of the project's previous event (``project_prev_hash``). So changing, removing, inserting or
swapping an event breaks the links after it in both chains, and one project's events can be
checked alone. Length prefixes keep field boundaries unambiguous: ("ab", "c") and ("a", "bc")
hash apart.

The hash can be recomputed by anyone holding the rows (an auditor's export); the MAC, an
HMAC-SHA256 of the hash under a key kept in the key store, can only be made by the daemon, so
someone who can write the database but not read the key store cannot forge an event whose MAC
checks. docs/audit-format.md specifies all of it for independent verifiers.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

FORMAT_TAG = "vokter-audit-v2"
GENESIS_HASH = "0" * 64
HASH_ALGORITHMS = ("sha256", "sha512", "blake2b")
MAC_ALGORITHM = "sha256"

#: Length marker of an absent (None) field, so that absent and empty hash apart.
ABSENT = b"\xff" * 8
_LENGTH = struct.Struct(">Q").pack


@dataclass(frozen=True, slots=True)
class EventFields:
    """What an audit event says, before the chain numbers and links it."""

    time: datetime
    actor_uid: int
    actor: str
    action: str
    outcome: str
    project_id: str | None = None
    target: str | None = None
    rule: str | None = None
    details: Mapping[str, Any] | None = None


def canonical_details(details: Mapping[str, Any] | None) -> str:
    """One spelling for the same details, whatever order they were built in."""
    return json.dumps(dict(details or {}), sort_keys=True, separators=(",", ":"), default=str)


def format_time(moment: datetime) -> str:
    """The one spelling of an event's time in hashes and exports: UTC, always microseconds,
    ``Z`` (``2026-11-23T12:00:00.000000Z``), so a verifier in any language reproduces it."""
    if moment.tzinfo is None:
        raise ValueError("audit times are timezone-aware")
    # isoformat is several times faster than strftime; for an aware UTC time its first 26
    # characters are exactly YYYY-MM-DDTHH:MM:SS.ffffff.
    return moment.astimezone(UTC).isoformat(timespec="microseconds")[:26] + "Z"


def parse_time(text: str) -> datetime:
    """The inverse of :func:`format_time`; anything else is refused."""
    moment = datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    if format_time(moment) != text:
        raise ValueError(f"not a canonical audit time: {text!r}")
    return moment


def encode_fields(values: Sequence[str | None]) -> bytes:
    """Each field as an 8-byte big-endian length and its UTF-8 bytes; None as ``ABSENT``."""
    parts: list[bytes] = []
    append = parts.append
    for value in values:
        if value is None:
            append(ABSENT)
            continue
        raw = value.encode("utf-8")
        append(_LENGTH(len(raw)))
        append(raw)
    return b"".join(parts)


def event_hash(
    *,
    algorithm: str,
    seq: int,
    time: str,
    actor_uid: int,
    actor: str,
    action: str,
    project_id: str | None,
    project_seq: int | None,
    target: str | None,
    outcome: str,
    rule: str | None,
    details: str,
    prev_hash: str,
    project_prev_hash: str | None,
) -> str:
    """The hex digest an event must carry; ``time`` is already :func:`format_time`-ed."""
    if algorithm not in HASH_ALGORITHMS:
        raise ValueError(f"unsupported audit hash algorithm {algorithm!r}")
    payload = encode_fields(
        [
            FORMAT_TAG,
            algorithm,
            str(seq),
            time,
            str(actor_uid),
            actor,
            action,
            project_id,
            None if project_seq is None else str(project_seq),
            target,
            outcome,
            rule,
            details,
            prev_hash,
            project_prev_hash,
        ]
    )
    return hashlib.new(algorithm, payload).hexdigest()


def event_mac(key: bytes, digest: str) -> str:
    """HMAC-SHA256 over the event hash's bytes: whoever lacks the key cannot make one."""
    return hmac.new(key, bytes.fromhex(digest), MAC_ALGORITHM).hexdigest()


def mac_pads(key: bytes) -> tuple[Any, Any]:
    """HMAC-SHA256's inner and outer hash states for ``key`` (RFC 2104), computed once, so
    sealing or verifying many events does not re-derive the key each time."""
    block = hashlib.sha256().block_size
    padded = (hashlib.sha256(key).digest() if len(key) > block else key).ljust(block, b"\0")
    return (hashlib.sha256(bytes(b ^ 0x36 for b in padded)),
            hashlib.sha256(bytes(b ^ 0x5C for b in padded)))


class MacSealer:
    """:func:`event_mac` with the key's pads computed once: verifying a million events spends
    its time hashing, not re-deriving the key (the result is the same HMAC)."""

    def __init__(self, key: bytes) -> None:
        self._inner, self._outer = mac_pads(key)

    def mac(self, digest: str) -> str:
        inner = self._inner.copy()
        inner.update(bytes.fromhex(digest))
        outer = self._outer.copy()
        outer.update(inner.digest())
        digest_hex: str = outer.hexdigest()
        return digest_hex


class ChainLink(Protocol):
    """An event as stored: what the chain hashes, whatever holds it (a row, an export line)."""

    hash_alg: str
    seq: int
    time: datetime
    actor_uid: int
    actor: str
    action: str
    project_id: str | None
    project_seq: int | None
    target: str | None
    outcome: str
    rule: str | None
    details: str
    prev_hash: str
    project_prev_hash: str | None


def link_hash(link: ChainLink) -> str:
    """The hash ``link`` must carry: written by the trail, recomputed by every verifier."""
    return event_hash(
        algorithm=link.hash_alg,
        seq=link.seq,
        time=format_time(link.time),
        actor_uid=link.actor_uid,
        actor=link.actor,
        action=link.action,
        project_id=link.project_id,
        project_seq=link.project_seq,
        target=link.target,
        outcome=link.outcome,
        rule=link.rule,
        details=link.details,
        prev_hash=link.prev_hash,
        project_prev_hash=link.project_prev_hash,
    )
