"""One seal of the audit trail, and what status and auditors read about sealing (A5).

A seal runs inside ``Store.write``, so two daemons sharing one PostgreSQL database take turns,
and starts from the checkpoint kept in the key store (out of reach of whoever can write the
database), else the newest stored one whose signature holds. It verifies the events since
(``agent.audit.seal.extend``) and signs a new checkpoint over them, or records the damage that
forbids one: damage is never signed over. It is recorded once as ``audit.damage_detected``
(A5); sealing stays stopped until the damage is gone or root accepts it
(``agent.audit.reanchor``). The thread that calls ``seal`` when due is ``agent.audit.sealer``.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog
from sqlmodel import Session, col, select

from agent.api.dispatch import Caller, RequestContext
from agent.audit.chain import format_time
from agent.audit.checkpoint import Checkpoint, SignedCheckpoint, parse_checkpoint_document
from agent.audit.keys import AuditKeys, key_store_dir
from agent.audit.seal import (
    CHECKPOINT_FILE,
    extend,
    is_signed_by,
    read_checkpoint_file,
    still_holds,
    store_checkpoint,
    write_checkpoint_file,
)
from agent.audit.verify import Damage
from agent.errors import AuditUnavailable
from agent.services import Services
from agent.store.tables import AuditCheckpoint, AuditEvent

log = structlog.get_logger("vokterd.sealing")

DAMAGE_ACTION = "audit.damage_detected"
#: The kind recorded when the key store's checkpoint itself is refused (not signed by our key,
#: or unreadable): nothing can be extended from it.
REFUSED_CHECKPOINT = "checkpoint_refused"
#: How many stored checkpoints to try, newest first, for one whose signature holds.
STORED_CANDIDATES = 100
_LOCK_FILE = ".checkpoint.lock"
_WHAT = {
    "tail_cut": "the trail's tail was cut off, or the database was replaced by an older copy",
    "changed": "the trail was rewritten, or the database was replaced by another copy",
    REFUSED_CHECKPOINT: "the checkpoint kept in the key store was replaced or damaged",
}


@dataclass(frozen=True, slots=True)
class TrailDamage:
    """What stops a checkpoint: a verifier's damage, or a refused key-store checkpoint."""

    kind: str
    seq: int | None
    message: str
    #: The checkpoint the trail was held against: the same damage against the same checkpoint
    #: is one damage, recorded once; after sealing resumed, a new one.
    against: Checkpoint | None = None

    @classmethod
    def of(cls, damage: Damage, against: Checkpoint | None) -> TrailDamage:
        return cls(damage.kind.value, damage.seq, damage.message, against)

    def details(self) -> dict[str, Any]:
        details: dict[str, Any] = {"kind": self.kind, "seq": self.seq,
                                   "message": self.message[:500]}
        if self.against is not None:
            details["checkpoint_seq"] = self.against.trail.seq
            details["checkpoint_time"] = format_time(self.against.time)
        return details

    def identity(self) -> tuple[Any, ...]:
        return _identity(self.details())

    @property
    def what(self) -> str:
        return _WHAT.get(self.kind, f"the trail is damaged ({self.kind})")


@dataclass(frozen=True, slots=True)
class SealResult:
    #: The checkpoint this seal made; None when nothing moved or damage forbade it.
    made: SignedCheckpoint | None
    #: The newest trusted checkpoint afterwards (``made``, else the one it would have extended).
    latest: SignedCheckpoint | None
    damage: TrailDamage | None = None
    #: Whether this seal recorded the damage (False: recorded before, not repeated).
    recorded: bool = False


def _identity(details: Mapping[str, Any]) -> tuple[Any, ...]:
    return tuple(details.get(key) for key in ("kind", "seq", "checkpoint_seq", "checkpoint_time"))


def daemon_caller() -> Caller:
    """The daemon itself, as the actor of the events it records on its own."""
    return Caller(uid=os.getuid(), gid=os.getgid(), pid=os.getpid(), name="vokterd")


def newest_valid_stored(session: Session, keys: AuditKeys) -> SignedCheckpoint | None:
    """The newest stored checkpoint signed by our key; forged or garbled rows are passed over.
    Rows are read one at a time: each names every project, and the first is nearly always it."""
    ids = session.exec(
        select(AuditCheckpoint.id).order_by(col(AuditCheckpoint.id).desc())
        .limit(STORED_CANDIDATES)
    ).all()
    for row_id in ids:
        row = session.get(AuditCheckpoint, row_id)
        if row is None:
            continue
        try:
            signed = parse_checkpoint_document(
                json.dumps({"payload": row.payload, "signature": row.signature})
            )
        except ValueError:
            continue
        if is_signed_by(signed, keys):
            return signed
    return None


def trusted_previous(session: Session, key_store: Path, keys: AuditKeys) -> SignedCheckpoint | None:
    """What the next checkpoint extends: the key store's copy (the database cannot touch it),
    else the newest stored one that is ours. A stored one newer than the key store's copy is
    ours too (only our key signs), written by a daemon sharing this database that had not yet
    updated the copy: extending it saves verifying the same events twice. An older one never
    wins, so a database put back to an older copy is still held against the kept checkpoint.
    Raises AuditUnavailable if the key store's copy is there but refused: falling back to the
    database would let whoever replaced it choose."""
    kept = read_checkpoint_file(key_store, keys)
    stored = newest_valid_stored(session, keys)
    if kept is None or (stored is not None
                        and stored.checkpoint.trail.seq > kept.checkpoint.trail.seq):
        return stored
    return kept


def previous_or_damage(
    session: Session, services: Services
) -> tuple[SignedCheckpoint | None, TrailDamage | None]:
    """The checkpoint to extend, or the damage that there is none to trust."""
    try:
        return trusted_previous(session, services.config.key_store, services.audit_keys), None
    except AuditUnavailable as error:
        stored = newest_valid_stored(session, services.audit_keys)
        return None, TrailDamage(REFUSED_CHECKPOINT, None, error.one_line(),
                                 stored.checkpoint if stored is not None else None)


def _recent_damage(session: Session, limit: int) -> list[tuple[int, dict[str, Any]]]:
    rows = session.exec(
        select(AuditEvent.seq, AuditEvent.details).where(AuditEvent.action == DAMAGE_ACTION)
        .order_by(col(AuditEvent.seq).desc()).limit(limit)
    ).all()
    recent = []
    for seq, text in rows:
        try:
            details = json.loads(text)
        except ValueError:
            continue
        if isinstance(details, dict):
            recent.append((seq, details))
    return recent


def _recorded_already(session: Session, damage: TrailDamage) -> bool:
    """One event per distinct damage, however often sealing is retried."""
    return any(_identity(details) == damage.identity()
               for _, details in _recent_damage(session, 50))


def record_damage(session: Session, services: Services, actor: Caller, damage: TrailDamage,
                  *, found: str) -> None:
    RequestContext(actor, services).audit(
        session, DAMAGE_ACTION, outcome="violation", rule="A5",
        details={**damage.details(), "found": found},
    )


def keep_in_key_store(key_store: Path, keys: AuditKeys, signed: SignedCheckpoint,
                      *, replace: bool = False) -> bool:
    """Make ``signed`` the kept checkpoint, unless the kept one is as new already (another
    daemon sharing the key store may have written a newer one meanwhile). ``replace`` keeps the
    current file beside it as evidence and writes ``signed`` whatever it holds."""
    directory = key_store_dir(key_store)
    lock = os.open(directory / _LOCK_FILE,
                   os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        current_path = directory / CHECKPOINT_FILE
        if replace:
            if current_path.exists():
                stamp = signed.checkpoint.time.strftime("%Y%m%dT%H%M%S%fZ")
                os.replace(current_path, directory / f"checkpoint-replaced-{stamp}.json")
        else:
            try:
                current = read_checkpoint_file(key_store, keys)
            except AuditUnavailable as error:
                log.error("checkpoint_file_refused", error=error.one_line())
                return False  # the evidence stays where it is
            if current is not None and current.checkpoint.trail.seq >= signed.checkpoint.trail.seq:
                return False
        write_checkpoint_file(key_store, signed)
        return True
    finally:
        os.close(lock)


def seal(services: Services, actor: Caller | None = None) -> SealResult:
    """One seal: extend the trusted checkpoint over the events since, or record the damage."""
    keys = services.audit_keys
    with services.store.write() as session:
        previous, damage = previous_or_damage(session, services)
        made = None
        if damage is None:
            against = previous.checkpoint if previous else None
            made, found = extend(session, keys, services.clock.now(), against)
            damage = TrailDamage.of(found, against) if found is not None else None
        recorded = False
        if damage is not None:
            if not _recorded_already(session, damage):
                record_damage(session, services, actor or daemon_caller(), damage,
                              found="sealing")
                recorded = True
        elif made is not None:
            store_checkpoint(session, made)
    if made is not None:
        keep_in_key_store(services.config.key_store, keys, made)
    return SealResult(made, made or previous, damage, recorded)


def check_at_start(services: Services, actor: Caller | None = None) -> TrailDamage | None:
    """Before serving: does the checkpoint sealed last still hold against the database? A cut
    tail or a database replaced by an older copy is recorded and logged at every start it is
    found; the daemon serves on (``vokter audit verify`` names the damage in detail)."""
    with services.store.write() as session:
        previous, damage = previous_or_damage(session, services)
        if damage is None and previous is not None:
            found = still_holds(session, previous.checkpoint)
            damage = TrailDamage.of(found, previous.checkpoint) if found is not None else None
        if damage is not None:
            record_damage(session, services, actor or daemon_caller(), damage, found="start")
    if damage is not None:
        log.error("audit_trail_damaged", what=damage.what, kind=damage.kind, seq=damage.seq,
                  message=damage.message, sealing="stopped until the damage is resolved",
                  hint="run 'vokter audit verify'; see docs/audit.md, Checkpoints and keys")
    return damage


def kept_checkpoint(services: Services) -> tuple[SignedCheckpoint | None, str | None]:
    """The newest trusted checkpoint for status and auditors, and why there is none if the
    key store's copy is refused (then the newest stored one that is ours is shown)."""
    with services.store.read() as session:
        try:
            return trusted_previous(session, services.config.key_store,
                                    services.audit_keys), None
        except AuditUnavailable as error:
            return newest_valid_stored(session, services.audit_keys), error.one_line()


def unresolved_damage(services: Services,
                      latest: SignedCheckpoint | None) -> dict[str, Any] | None:
    """The damage that keeps sealing stopped: the newest one recorded, if it was found against
    the newest trusted checkpoint (sealing resumed otherwise)."""
    with services.store.read() as session:
        recent = _recent_damage(session, 1)
    if not recent:
        return None
    event, details = recent[0]
    expected = (None, None) if latest is None else (
        latest.checkpoint.trail.seq, format_time(latest.checkpoint.time))
    if (details.get("checkpoint_seq"), details.get("checkpoint_time")) != expected:
        return None
    return {"event": event, "kind": details.get("kind"), "seq": details.get("seq"),
            "message": details.get("message")}
