"""The certificate of disposal (L2): what was disposed of, on what legal basis, how, and the proof
that it is gone, signed with the audit trail's key (pure).

Why a signed document and not a report: the people who must rely on it (the data owner, the
ethics committee, a supervisory authority) are outside the enclave and years later. They hold
the trail's public key (``vokter audit pubkey``) and nothing else, so the certificate carries its
signed bytes as a string (``payload``, canonical JSON) beside an Ed25519 signature, exactly as
the trail's checkpoints and export manifests do: a verifier checks what was signed before it
parses anything, and no JSON re-serialisation is involved. One changed byte, a signature by
another key, or a document that is not a certificate, is named as such.

Every text that came from people or files (paths, the title, references, the outcomes of the
run) passes through :func:`agent.audit.redact.redact_identity_numbers` on the way in: a file
named by a fødselsnummer must not carry the number out of the enclave. Hashes, key ids and
signatures are Vokter's own and are left as they are.
"""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Protocol

from agent.audit.chain import format_time
from agent.audit.redact import redact_identity_numbers
from agent.lifecycle.model import ApprovalFacts, HoldFacts

CERTIFICATE_FORMAT = "vokter-disposal-certificate-v1"
CERTIFICATE_FILE = "certificate.json"
TOOL = "vokter"
METHODS = ("delete", "anonymise", "archive")
#: A certificate of 100,000 files is some 20 MB; anything far larger is the wrong file.
MAX_CERTIFICATE_BYTES = 512 * 1024 * 1024


class FileEntry(Protocol):
    """One entry of a zone as the inventory took it before removal
    (:class:`agent.lifecycle.removal.Item` is one)."""

    @property
    def zone(self) -> str: ...
    @property
    def path(self) -> str: ...
    @property
    def kind(self) -> str: ...
    @property
    def size(self) -> int: ...
    @property
    def sha256(self) -> str | None: ...


@dataclass(frozen=True)
class DisposalRecord:
    """What the disposal run knows at its end; the certificate states all of it."""

    project: str
    title: str
    leader: str
    end_date: date
    policy_name: str
    policy_version: str
    approvals: tuple[ApprovalFacts, ...]
    holds: tuple[HoldFacts, ...]
    holds_checked_at: datetime
    #: (step, rule IDs) taken, in order: ("end", "L1, L8"), ...
    decision: tuple[tuple[str, str], ...]
    method: str  #: "delete" | "anonymise" | "archive"
    #: What shredding the keyset returned (destroyed_at, master_key_id, ...).
    keyset: Mapping[str, Any]
    files: tuple[FileEntry, ...]
    #: The anonymisation's outcome per table (k reached, ...); empty for a deletion.
    tables: tuple[Mapping[str, Any], ...]
    #: Checked after the run: {"zones_empty": bool, "left": [...], "key_opens": False}.
    verification: Mapping[str, Any]
    started_at: datetime
    finished_at: datetime


@dataclass(frozen=True, slots=True)
class CheckpointRef:
    """A signed checkpoint of the trail as the certificate names it. Not the checkpoint's own
    payload: that names every project, and the leader may read this certificate."""

    seq: int
    head: str
    time: datetime
    key_id: str
    signature: str  #: base64, as in the checkpoint's document
    #: The project's own chain at that checkpoint, if it had events by then.
    project_seq: int | None = None
    project_head: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {"seq": self.seq, "head": self.head, "time": format_time(self.time),
                "key_id": self.key_id, "signature": self.signature,
                "project_seq": self.project_seq, "project_head": self.project_head}


# --- building ---------------------------------------------------------------------------------


def clean_text(text: str) -> str:
    """Every text the certificate carries is masked, hex-looking ones too: a file named by an
    identity number with letters after it must not leave with its number (file hashes are
    written as they are, never through here)."""
    return redact_identity_numbers(text)


def _plain(value: Any) -> Any:
    """A free-form value (the keyset's, the tables', the verification's) as JSON, masked."""
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, datetime):
        return format_time(value) if value.tzinfo is not None else value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, Mapping):
        return {clean_text(str(key)): _plain(item) for key, item in value.items()}
    if isinstance(value, Sequence | set | frozenset):
        return [_plain(item) for item in value]
    return clean_text(str(value))


def _day(value: date | None) -> str | None:
    return None if value is None else value.isoformat()


def _approval(facts: ApprovalFacts) -> dict[str, Any]:
    return {"id": facts.id, "kind": facts.kind.value, "reference": clean_text(facts.reference),
            "valid_until": _day(facts.valid_until),
            "retention_until": _day(facts.retention_until),
            "clinical_trial": facts.clinical_trial, "final_report": _day(facts.final_report)}


def _hold(facts: HoldFacts) -> dict[str, Any]:
    return {"id": facts.id, "reason": facts.reason.value, "reference": clean_text(facts.reference),
            "released_on": _day(facts.released_on)}


def _files(entries: Sequence[FileEntry]) -> dict[str, Any]:
    """Grouped by zone (the zone's path is said once, not 100,000 times)."""
    zones: dict[str, list[dict[str, Any]]] = {}
    files = size = 0
    for entry in entries:
        zones.setdefault(clean_text(entry.zone), []).append(
            {"path": clean_text(entry.path), "kind": entry.kind, "size": entry.size,
             "sha256": entry.sha256})
        if entry.kind == "file":
            files += 1
            size += entry.size
    return {"entries": len(entries), "files": files, "bytes": size,
            "zones": [{"zone": zone, "entries": items} for zone, items in zones.items()]}


def certificate_payload(record: DisposalRecord, *, version: str, key_id: str,
                        before: CheckpointRef | None, after: CheckpointRef,
                        issued_at: datetime) -> str:
    """The exact text that is signed: canonical JSON (sorted keys, no spaces, ASCII)."""
    if record.method not in METHODS:
        raise ValueError(f"unknown disposal method {record.method!r}")
    body = {
        "format": CERTIFICATE_FORMAT,
        "project": {"id": record.project, "title": clean_text(record.title),
                    "leader": clean_text(record.leader), "end_date": record.end_date.isoformat()},
        "legal_basis": {
            "policy": {"name": clean_text(record.policy_name),
                       "version": clean_text(record.policy_version)},
            "approvals": [_approval(facts) for facts in record.approvals],
            "holds": [_hold(facts) for facts in record.holds],
            "holds_checked_at": format_time(record.holds_checked_at),
        },
        "decision": [{"step": clean_text(step), "rules": clean_text(rules)}
                     for step, rules in record.decision],
        "method": record.method,
        "keys_destroyed": _plain(record.keyset),
        "files": _files(record.files),
        "tables": [_plain(table) for table in record.tables],
        "verification": _plain(record.verification),
        "run": {"started_at": format_time(record.started_at),
                "finished_at": format_time(record.finished_at)},
        "tool": {"name": TOOL, "version": clean_text(version)},
        "audit": {"key_id": key_id, "before": None if before is None else before.as_json(),
                  "after": after.as_json()},
        "issued_at": format_time(issued_at),
    }
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True,
                      allow_nan=False)


def certificate_document(payload: str, signature: bytes) -> str:
    """The file kept and handed out: the payload and its signature."""
    document = {"payload": payload, "signature": base64.b64encode(signature).decode()}
    return json.dumps(document, indent=2, sort_keys=True) + "\n"
