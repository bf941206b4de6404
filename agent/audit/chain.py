"""The hash chain over audit events (pure).

Each event's hash covers a canonical, length-prefixed encoding of its fields and the previous
event's hash, so changing, removing, inserting or swapping an event breaks every hash after it.
Length prefixes keep field boundaries unambiguous: ("ab", "c") and ("a", "bc") hash apart.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

GENESIS_HASH = "0" * 64
HASH_ALGORITHMS = ("sha256", "sha512", "blake2b")


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


#: Length marker of an absent (None) field, so that absent and empty hash apart.
ABSENT = (2**64 - 1).to_bytes(8, "big")


def encode_fields(values: Sequence[str | None]) -> bytes:
    """Each field as an 8-byte big-endian length and its UTF-8 bytes; None as ``ABSENT``."""
    parts = []
    for value in values:
        if value is None:
            parts.append(ABSENT)
            continue
        raw = value.encode("utf-8")
        parts.append(len(raw).to_bytes(8, "big"))
        parts.append(raw)
    return b"".join(parts)


def event_hash(
    *,
    algorithm: str,
    seq: int,
    time_iso: str,
    actor_uid: int,
    actor: str,
    action: str,
    project_id: str | None,
    target: str | None,
    outcome: str,
    rule: str | None,
    details: str,
    prev_hash: str,
) -> str:
    if algorithm not in HASH_ALGORITHMS:
        raise ValueError(f"unsupported audit hash algorithm {algorithm!r}")
    payload = encode_fields(
        [
            "vokter-audit-v1",
            algorithm,
            str(seq),
            time_iso,
            str(actor_uid),
            actor,
            action,
            project_id,
            target,
            outcome,
            rule,
            details,
            prev_hash,
        ]
    )
    return hashlib.new(algorithm, payload).hexdigest()


class ChainLink(Protocol):
    """An event as stored: what the chain hashes, whatever holds it (a row, an export line)."""

    hash_alg: str
    seq: int
    time: datetime
    actor_uid: int
    actor: str
    action: str
    project_id: str | None
    target: str | None
    outcome: str
    rule: str | None
    details: str
    prev_hash: str


def link_hash(link: ChainLink) -> str:
    """The hash ``link`` must carry: written by the trail, recomputed by every verifier."""
    return event_hash(
        algorithm=link.hash_alg,
        seq=link.seq,
        time_iso=link.time.isoformat(),
        actor_uid=link.actor_uid,
        actor=link.actor,
        action=link.action,
        project_id=link.project_id,
        target=link.target,
        outcome=link.outcome,
        rule=link.rule,
        details=link.details,
        prev_hash=link.prev_hash,
    )
