"""Reading a certificate of disposal back and checking it (L2): with the trail's public key
alone, far from the enclave.

Why apart from the building (:mod:`agent.lifecycle.certificate`): the offline check runs in
the CLI of someone who has no daemon, and everything it accepts is checked here, field by
field, before anything of it is believed.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from agent.audit.chain import parse_time
from agent.lifecycle.certificate import (
    CERTIFICATE_FORMAT,
    MAX_CERTIFICATE_BYTES,
    METHODS,
    clean_text,
)

# --- reading one back -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Certificate:
    """A parsed certificate: the whole payload (``body``, its shape checked) and what a summary
    line says."""

    body: Mapping[str, Any]
    project: str
    method: str
    entries: int
    files: int
    bytes: int
    issued_at: datetime
    key_id: str
    before_seq: int | None
    after_seq: int


def _object(value: Any, where: str, keys: set[str]) -> dict[str, Any]:
    if not isinstance(value, dict) or set(value) != keys:
        raise ValueError(f"{where} must be an object with {', '.join(sorted(keys))}")
    return value


def _list(value: Any, where: str) -> list[Any]:
    if not isinstance(value, list):
        raise ValueError(f"{where} must be a list")
    return value


def _text(value: Any, where: str, *, empty: bool = True) -> str:
    if not isinstance(value, str) or (not empty and not value):
        raise ValueError(f"{where} must be text")
    return value


def _maybe_text(value: Any, where: str) -> str | None:
    return None if value is None else _text(value, where)


def _whole(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{where} must be a whole number >= 0")
    return value


def _time(value: Any, where: str) -> datetime:
    try:
        return parse_time(_text(value, where))
    except ValueError:
        raise ValueError(f"{where} is not a canonical UTC time") from None


def _day_text(value: Any, where: str) -> None:
    if value is None:
        return
    try:
        date.fromisoformat(_text(value, where))
    except ValueError:
        raise ValueError(f"{where} is not a date") from None


def _checkpoint(value: Any, where: str) -> int:
    body = _object(value, where, {"seq", "head", "time", "key_id", "signature", "project_seq",
                                  "project_head"})
    for name in ("head", "key_id", "signature"):
        _text(body[name], f"{where}.{name}", empty=False)
    _time(body["time"], f"{where}.time")
    if body["project_seq"] is not None:
        _whole(body["project_seq"], f"{where}.project_seq")
    _maybe_text(body["project_head"], f"{where}.project_head")
    return _whole(body["seq"], f"{where}.seq")


def _check_files(value: Any) -> tuple[int, int, int]:
    body = _object(value, "files", {"entries", "files", "bytes", "zones"})
    entries = files = size = 0
    for number, zone in enumerate(_list(body["zones"], "files.zones")):
        where = f"files.zones[{number}]"
        zone = _object(zone, where, {"zone", "entries"})
        _text(zone["zone"], f"{where}.zone")
        for item in _list(zone["entries"], f"{where}.entries"):
            item = _object(item, f"an entry of {where}", {"path", "kind", "size", "sha256"})
            _text(item["path"], "an entry's path")
            kind = _text(item["kind"], "an entry's kind")
            length = _whole(item["size"], "an entry's size")
            _maybe_text(item["sha256"], "an entry's sha256")
            entries += 1
            if kind == "file":
                files += 1
                size += length
    stated = (_whole(body["entries"], "files.entries"), _whole(body["files"], "files.files"),
              _whole(body["bytes"], "files.bytes"))
    if stated != (entries, files, size):
        raise ValueError("the file totals do not add up to the entries listed")
    return stated


_FIELDS = {"format", "project", "legal_basis", "decision", "method", "keys_destroyed", "files",
           "tables", "verification", "run", "tool", "audit", "issued_at"}


def parse_certificate_payload(payload: str) -> Certificate:
    try:
        body = json.loads(payload)
    except (json.JSONDecodeError, RecursionError):
        raise ValueError("the certificate's payload is not JSON") from None
    if not isinstance(body, dict) or body.get("format") != CERTIFICATE_FORMAT:
        raise ValueError(f"not a {CERTIFICATE_FORMAT} certificate")
    if set(body) != _FIELDS:
        raise ValueError("the certificate has missing or unknown fields")
    project = _object(body["project"], "project", {"id", "title", "leader", "end_date"})
    for name in ("id", "title", "leader"):
        _text(project[name], f"project.{name}")
    _day_text(project["end_date"], "project.end_date")
    basis = _object(body["legal_basis"], "legal_basis",
                    {"policy", "approvals", "holds", "holds_checked_at"})
    policy = _object(basis["policy"], "legal_basis.policy", {"name", "version"})
    _text(policy["name"], "the policy's name")
    _text(policy["version"], "the policy's version")
    for approval in _list(basis["approvals"], "legal_basis.approvals"):
        approval = _object(approval, "an approval", {"id", "kind", "reference", "valid_until",
                                                     "retention_until", "clinical_trial",
                                                     "final_report"})
        _whole(approval["id"], "an approval's id")
        _text(approval["kind"], "an approval's kind")
        _text(approval["reference"], "an approval's reference")
        for name in ("valid_until", "retention_until", "final_report"):
            _day_text(approval[name], f"an approval's {name}")
        if not isinstance(approval["clinical_trial"], bool):
            raise ValueError("an approval's clinical_trial must be true or false")
    for hold in _list(basis["holds"], "legal_basis.holds"):
        hold = _object(hold, "a hold", {"id", "reason", "reference", "released_on"})
        _whole(hold["id"], "a hold's id")
        _text(hold["reason"], "a hold's reason")
        _text(hold["reference"], "a hold's reference")
        _day_text(hold["released_on"], "a hold's released_on")
    _time(basis["holds_checked_at"], "legal_basis.holds_checked_at")
    for step in _list(body["decision"], "decision"):
        step = _object(step, "a decision step", {"step", "rules"})
        _text(step["step"], "a decision step")
        _text(step["rules"], "a decision step's rules")
    if body["method"] not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}")
    if not isinstance(body["keys_destroyed"], dict):
        raise ValueError("keys_destroyed must be an object")
    for table in _list(body["tables"], "tables"):
        if not isinstance(table, dict):
            raise ValueError("each table's outcome must be an object")
    if not isinstance(body["verification"], dict):
        raise ValueError("verification must be an object")
    entries, files, size = _check_files(body["files"])
    run = _object(body["run"], "run", {"started_at", "finished_at"})
    _time(run["started_at"], "run.started_at")
    _time(run["finished_at"], "run.finished_at")
    tool = _object(body["tool"], "tool", {"name", "version"})
    _text(tool["name"], "tool.name")
    _text(tool["version"], "tool.version")
    audit = _object(body["audit"], "audit", {"key_id", "before", "after"})
    return Certificate(
        body=body, project=project["id"], method=body["method"], entries=entries, files=files,
        bytes=size, issued_at=_time(body["issued_at"], "issued_at"),
        key_id=_text(audit["key_id"], "audit.key_id", empty=False),
        before_seq=None if audit["before"] is None
        else _checkpoint(audit["before"], "audit.before"),
        after_seq=_checkpoint(audit["after"], "audit.after"),
    )


def parse_certificate_document(text: bytes) -> tuple[str, bytes]:
    """A certificate file: the exact signed payload and the signature (neither checked here)."""
    if len(text) > MAX_CERTIFICATE_BYTES:
        raise ValueError("larger than any certificate; is it the right file?")
    try:
        document = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError):
        raise ValueError("not a certificate: not JSON") from None
    if (not isinstance(document, dict) or set(document) != {"payload", "signature"}
            or not all(isinstance(v, str) for v in document.values())):
        raise ValueError("not a certificate: expected an object with payload and signature")
    try:
        signature = base64.b64decode(document["signature"], validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("the certificate's signature is not base64") from None
    # One spelling only: base64 ignores the unused bits of its last character, so without this
    # a changed byte there would pass.
    if base64.b64encode(signature).decode() != document["signature"]:
        raise ValueError("the certificate's signature is not canonical base64")
    return document["payload"], signature


@dataclass(frozen=True, slots=True)
class CertificateCheck:
    """What checking found: ``problem`` is None when the certificate is intact."""

    certificate: Certificate | None = None
    problem: str | None = None
    #: malformed | wrong_key | changed (and, reading the files, unreadable)
    kind: str | None = None

    @property
    def ok(self) -> bool:
        return self.problem is None


def _named_key(payload: str) -> str | None:
    """The key id a payload claims, read leniently, to tell a wrong key from a change."""
    try:
        audit = json.loads(payload).get("audit")
        key_id = audit.get("key_id") if isinstance(audit, dict) else None
    except (ValueError, AttributeError, RecursionError):
        return None
    return key_id if isinstance(key_id, str) else None


def check_certificate(text: bytes, public_key: Ed25519PublicKey, key_id: str
                      ) -> CertificateCheck:
    """Check a certificate file against the trail's public key (``key_id`` is its id): the
    signature over the payload first, then the payload's shape."""
    try:
        payload, signature = parse_certificate_document(text)
    except ValueError as error:
        return CertificateCheck(problem=str(error), kind="malformed")
    try:
        public_key.verify(signature, payload.encode("utf-8"))
    except InvalidSignature:
        named = _named_key(payload)
        if named is not None and named != key_id:
            return CertificateCheck(
                problem=f"it names the key {clean_text(named)[:32]}, not the key given ({key_id}), "
                        "and its signature does not hold under the key given", kind="wrong_key")
        return CertificateCheck(
            problem="the signature does not match: the certificate was changed after it was "
                    "signed, or signed with another key", kind="changed")
    try:
        certificate = parse_certificate_payload(payload)
    except ValueError as error:
        return CertificateCheck(problem=f"signed, but not a valid certificate: {error}",
                                kind="malformed")
    if certificate.key_id != key_id:
        return CertificateCheck(problem=f"the certificate names the key {certificate.key_id}, "
                                        f"not the key given ({key_id})", kind="wrong_key")
    return CertificateCheck(certificate=certificate)
