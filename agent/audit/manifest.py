"""The signed manifest of an audit export (pure): what was exported, and the checkpoint over it.

An export file can be checked on a machine with no database and no daemon, with the trail's
public key alone. The manifest says which file it describes (name, size, SHA-256), how many
events it holds, which filters chose them, where the exported chain starts and ends, and embeds
the signed checkpoint that covers the last of them. Like a checkpoint, the signed bytes travel
as a string (``payload``), so a verifier checks exactly what was signed before parsing it.
docs/audit-format.md specifies every field.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, TypeVar

from agent.audit.chain import format_time, parse_time
from agent.audit.verify import COLUMNS, Mode

EXPORT_FORMAT = "vokter-export-v1"
MANIFEST_SUFFIX = ".manifest.json"
MAX_MANIFEST_BYTES = 64 * 1024 * 1024
DataFormat = Literal["csv", "jsonl"]
DATA_FORMATS: tuple[DataFormat, ...] = ("csv", "jsonl")
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class ExportFilters:
    project: str | None = None
    user: str | None = None
    action: str | None = None
    since: datetime | None = None
    until: datetime | None = None

    @property
    def narrows(self) -> bool:
        """Whether events of the chosen chain were left out (then each row stands alone)."""
        return any(v is not None for v in (self.user, self.action, self.since, self.until))

    def as_json(self) -> dict[str, str | None]:
        return {
            "project": self.project,
            "user": self.user,
            "action": self.action,
            "since": None if self.since is None else format_time(self.since),
            "until": None if self.until is None else format_time(self.until),
        }


def export_mode(filters: ExportFilters) -> Mode:
    """How the rows can be checked: as one project's whole chain, as the whole trail, or (any
    other filter) each event on its own against its hash."""
    if filters.narrows:
        return "rows"
    return "project" if filters.project is not None else "trail"


@dataclass(frozen=True, slots=True)
class ChainEnd:
    """The first or last exported event: where its chains stand."""

    seq: int
    project_seq: int | None
    #: The first event's predecessor hashes (the last event's own hash in ``hash``).
    prev_hash: str | None = None
    project_prev_hash: str | None = None
    hash: str | None = None


@dataclass(frozen=True, slots=True)
class Manifest:
    file_name: str
    file_format: DataFormat
    file_bytes: int
    file_sha256: str
    count: int
    filters: ExportFilters
    mode: Mode
    first: ChainEnd | None
    last: ChainEnd | None
    #: The export holds matching events up to this trail sequence number (its snapshot).
    through_seq: int
    checkpoint: dict[str, str]
    exported_at: datetime
    exported_by_uid: int
    exported_by: str
    key_id: str


def _end_json(end: ChainEnd | None, first: bool) -> dict[str, Any] | None:
    if end is None:
        return None
    body: dict[str, Any] = {"seq": end.seq, "project_seq": end.project_seq}
    if first:
        body.update(prev_hash=end.prev_hash, project_prev_hash=end.project_prev_hash)
    else:
        body["hash"] = end.hash
    return body


def manifest_payload(manifest: Manifest) -> str:
    """The exact text that is signed: canonical JSON (sorted keys, no spaces, ASCII)."""
    body = {
        "format": EXPORT_FORMAT,
        "file": {"name": manifest.file_name, "format": manifest.file_format,
                 "bytes": manifest.file_bytes, "sha256": manifest.file_sha256},
        "columns": list(COLUMNS),
        "count": manifest.count,
        "filters": manifest.filters.as_json(),
        "mode": manifest.mode,
        "first": _end_json(manifest.first, True),
        "last": _end_json(manifest.last, False),
        "through_seq": manifest.through_seq,
        "checkpoint": manifest.checkpoint,
        "exported_at": format_time(manifest.exported_at),
        "exported_by": {"uid": manifest.exported_by_uid, "name": manifest.exported_by},
        "key_id": manifest.key_id,
    }
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def manifest_document(payload: str, signature: bytes) -> str:
    """The file written beside the export (``FILE.manifest.json``)."""
    document = {"payload": payload, "signature": base64.b64encode(signature).decode()}
    return json.dumps(document, indent=2, sort_keys=True) + "\n"


# --- reading a manifest back (the offline verifier) --------------------------------------------


def _whole(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{where} must be a whole number >= 0")
    return value


def _text(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{where} must be text")
    return value


def _time(value: Any, where: str) -> datetime:
    if isinstance(value, str):
        try:
            return parse_time(value)
        except ValueError:
            pass
    raise ValueError(f"{where} is not a canonical UTC time")


def _maybe(read: Callable[[Any, str], T], value: Any, where: str) -> T | None:
    return None if value is None else read(value, where)


def _object(value: Any, where: str, keys: set[str]) -> dict[str, Any]:
    if not isinstance(value, dict) or set(value) != keys:
        raise ValueError(f"{where} must be an object with {', '.join(sorted(keys))}")
    return value


def _end(value: Any, where: str, first: bool) -> ChainEnd | None:
    if value is None:
        return None
    keys = {"seq", "project_seq", *(("prev_hash", "project_prev_hash") if first else ("hash",))}
    body = _object(value, where, keys)
    return ChainEnd(
        seq=_whole(body["seq"], f"{where}.seq"),
        project_seq=_maybe(_whole, body["project_seq"], f"{where}.project_seq"),
        prev_hash=_text(body["prev_hash"], f"{where}.prev_hash") if first else None,
        project_prev_hash=_maybe(_text, body.get("project_prev_hash"),
                                 f"{where}.project_prev_hash"),
        hash=None if first else _text(body["hash"], f"{where}.hash"),
    )


_FIELDS = {"format", "file", "columns", "count", "filters", "mode", "first", "last",
           "through_seq", "checkpoint", "exported_at", "exported_by", "key_id"}


def parse_manifest_payload(payload: str) -> Manifest:
    try:
        body = json.loads(payload)
    except (json.JSONDecodeError, RecursionError):
        raise ValueError("the manifest's payload is not JSON") from None
    if not isinstance(body, dict) or body.get("format") != EXPORT_FORMAT:
        raise ValueError(f"not a {EXPORT_FORMAT} manifest")
    if set(body) != _FIELDS:
        raise ValueError("the manifest has missing or unknown fields")
    if body["columns"] != list(COLUMNS):
        raise ValueError("the manifest names other columns than this verifier knows")
    file = _object(body["file"], "file", {"name", "format", "bytes", "sha256"})
    if file["format"] not in DATA_FORMATS:
        raise ValueError("file.format must be csv or jsonl")
    filters = _object(body["filters"], "filters", {"project", "user", "action", "since", "until"})
    by = _object(body["exported_by"], "exported_by", {"uid", "name"})
    if body["mode"] not in ("trail", "project", "rows"):
        raise ValueError("mode must be trail, project or rows")
    checkpoint = _object(body["checkpoint"], "checkpoint", {"payload", "signature"})
    return Manifest(
        file_name=_text(file["name"], "file.name"),
        file_format=file["format"],
        file_bytes=_whole(file["bytes"], "file.bytes"),
        file_sha256=_text(file["sha256"], "file.sha256"),
        count=_whole(body["count"], "count"),
        filters=ExportFilters(
            project=_maybe(_text, filters["project"], "filters.project"),
            user=_maybe(_text, filters["user"], "filters.user"),
            action=_maybe(_text, filters["action"], "filters.action"),
            since=_maybe(_time, filters["since"], "filters.since"),
            until=_maybe(_time, filters["until"], "filters.until"),
        ),
        mode=body["mode"],
        first=_end(body["first"], "first", True),
        last=_end(body["last"], "last", False),
        through_seq=_whole(body["through_seq"], "through_seq"),
        checkpoint={"payload": _text(checkpoint["payload"], "checkpoint.payload"),
                    "signature": _text(checkpoint["signature"], "checkpoint.signature")},
        exported_at=_time(body["exported_at"], "exported_at"),
        exported_by_uid=_whole(by["uid"], "exported_by.uid"),
        exported_by=_text(by["name"], "exported_by.name"),
        key_id=_text(body["key_id"], "key_id"),
    )


def parse_manifest_document(text: bytes) -> tuple[Manifest, str, bytes]:
    """A manifest file: the parsed manifest, the exact signed payload and the signature (not
    checked here)."""
    if len(text) > MAX_MANIFEST_BYTES:
        raise ValueError("larger than any manifest; is it the right file?")
    try:
        document = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError):
        raise ValueError("not a manifest: not JSON") from None
    if (not isinstance(document, dict) or set(document) != {"payload", "signature"}
            or not all(isinstance(v, str) for v in document.values())):
        raise ValueError("not a manifest: expected an object with payload and signature")
    try:
        signature = base64.b64decode(document["signature"], validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("the manifest's signature is not base64") from None
    payload = document["payload"]
    return parse_manifest_payload(payload), payload, signature
