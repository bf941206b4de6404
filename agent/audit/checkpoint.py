"""Signed checkpoints: the head of every chain at a moment, signed with the daemon's Ed25519 key.

A checkpoint pins everything before it: an event changed, removed or added, the tail cut off,
or the whole database replaced by an older copy, no longer matches a checkpoint made earlier.
The signed bytes are carried as a string inside the document (``payload``), so a verifier
checks exactly what was signed and only then parses it; no JSON re-serialisation is involved.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from agent.audit.chain import format_time, parse_time

CHECKPOINT_FORMAT = "vokter-checkpoint-v1"
MAX_CHECKPOINT_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class ChainHead:
    """The newest link of one chain: its sequence number (0 for an empty chain) and hash."""

    seq: int
    head: str


@dataclass(frozen=True, slots=True)
class Checkpoint:
    time: datetime
    key_id: str
    trail: ChainHead
    projects: Mapping[str, ChainHead] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class SignedCheckpoint:
    checkpoint: Checkpoint
    payload: str
    signature: bytes

    def document(self) -> dict[str, str]:
        """What an auditor keeps (``vokter audit checkpoint > FILE``)."""
        return {"payload": self.payload, "signature": base64.b64encode(self.signature).decode()}

    def to_json(self) -> str:
        return json.dumps(self.document(), indent=2, sort_keys=True) + "\n"


def checkpoint_payload(checkpoint: Checkpoint) -> str:
    """The exact text that is signed: canonical JSON (sorted keys, no spaces, ASCII)."""
    body = {
        "format": CHECKPOINT_FORMAT,
        "time": format_time(checkpoint.time),
        "key_id": checkpoint.key_id,
        "seq": checkpoint.trail.seq,
        "head": checkpoint.trail.head,
        "projects": {
            name: {"seq": head.seq, "head": head.head}
            for name, head in sorted(checkpoint.projects.items())
        },
    }
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def _head(value: Any, where: str) -> ChainHead:
    if not isinstance(value, dict) or set(value) != {"seq", "head"}:
        raise ValueError(f"{where}: expected seq and head")
    seq, head = value["seq"], value["head"]
    if isinstance(seq, bool) or not isinstance(seq, int) or seq < 0:
        raise ValueError(f"{where}: seq must be a whole number >= 0")
    if not isinstance(head, str) or not 64 <= len(head) <= 128:
        raise ValueError(f"{where}: head must be a hex hash")
    try:
        bytes.fromhex(head)
    except ValueError:
        raise ValueError(f"{where}: head must be a hex hash") from None
    return ChainHead(seq=seq, head=head)


def parse_checkpoint_payload(payload: str) -> Checkpoint:
    try:
        body = json.loads(payload)
    except (json.JSONDecodeError, RecursionError):
        raise ValueError("the checkpoint payload is not JSON") from None
    if not isinstance(body, dict) or body.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"not a {CHECKPOINT_FORMAT} checkpoint")
    expected = {"format", "time", "key_id", "seq", "head", "projects"}
    if set(body) != expected:
        raise ValueError("the checkpoint has missing or unknown fields")
    try:
        moment = parse_time(body["time"]) if isinstance(body["time"], str) else None
    except ValueError:
        moment = None
    if moment is None:
        raise ValueError("the checkpoint's time is not a canonical UTC time")
    if not isinstance(body["key_id"], str) or not body["key_id"]:
        raise ValueError("the checkpoint names no key")
    projects = body["projects"]
    if not isinstance(projects, dict):
        raise ValueError("the checkpoint's projects must be an object")
    return Checkpoint(
        time=moment,
        key_id=body["key_id"],
        trail=_head({"seq": body["seq"], "head": body["head"]}, "trail"),
        projects={str(name): _head(head, f"project {name}") for name, head in projects.items()},
    )


def parse_checkpoint_document(text: str | bytes) -> SignedCheckpoint:
    """A kept checkpoint file, parsed; the signature is not checked here."""
    if len(text) > MAX_CHECKPOINT_BYTES:
        raise ValueError("larger than any checkpoint; is it the right file?")
    try:
        document = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError):
        raise ValueError(
            "not a checkpoint: not JSON (expected 'vokter audit checkpoint' output)"
        ) from None
    if (
        not isinstance(document, dict)
        or not isinstance(document.get("payload"), str)
        or not isinstance(document.get("signature"), str)
    ):
        raise ValueError("not a checkpoint: expected an object with payload and signature")
    try:
        signature = base64.b64decode(document["signature"], validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("the checkpoint's signature is not base64") from None
    payload = document["payload"]
    return SignedCheckpoint(parse_checkpoint_payload(payload), payload, signature)
