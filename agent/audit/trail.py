"""Appending to the audit trail inside the caller's transaction.

The events are added to the same session as the change they record, so both commit or neither
does: an action whose audit event cannot be written does not happen (fail closed). Each event is
linked into the whole trail and into its project's chain, and sealed with the key store's MAC
key. Identity numbers are masked here, once, for every event whoever records it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import UTC
from typing import Any

import structlog
from sqlalchemy import bindparam, event, insert, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session as OrmSession
from sqlmodel import Session

from agent.audit.chain import (
    GENESIS_HASH,
    EventFields,
    MacSealer,
    canonical_details,
    event_hash,
    format_time,
)
from agent.audit.redact import has_identity_number, redact_identity_numbers
from agent.errors import AuditUnavailable
from agent.store.tables import AuditEvent, AuditHead

#: The chain name of the whole trail in ``audit_head`` (project ids are never empty).
TRAIL = ""
_PENDING = "vokter.audit.pending"
#: The SIEM feed's logger; its name rides in every line, so a forwarder selects on it and
#: the daemon's log level never drops it.
SIEM_LOGGER = "vokter.audit"
siem_log = structlog.get_logger(SIEM_LOGGER)


def _masked(value: Any) -> Any:
    if isinstance(value, str):
        return redact_identity_numbers(value)
    if isinstance(value, Mapping):
        return {str(k): _masked(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_masked(v) for v in value]
    return value


_EVENTS = AuditEvent.__table__  # type: ignore[attr-defined]
_HEADS = AuditHead.__table__  # type: ignore[attr-defined]


def _heads(session: Session, chains: set[str]) -> dict[str, tuple[int, str]]:
    found = session.connection().execute(
        select(_HEADS.c.chain, _HEADS.c.seq, _HEADS.c.hash).where(_HEADS.c.chain.in_(chains))
    )
    return {chain: (seq, digest) for chain, seq, digest in found}


def _save_heads(session: Session, before: dict[str, tuple[int, str]],
                after: dict[str, tuple[int, str]]) -> None:
    """Core statements, not ORM objects: one insert and one update per batch at most."""
    connection = session.connection()
    new = [{"chain": name, "seq": seq, "hash": digest}
           for name, (seq, digest) in after.items() if name not in before]
    moved = [{"name": name, "seq": seq, "hash": digest}
             for name, (seq, digest) in after.items()
             if name in before and before[name] != (seq, digest)]
    if new:
        connection.execute(insert(_HEADS), new)
    if moved:
        connection.execute(
            update(_HEADS).where(_HEADS.c.chain == bindparam("name"))
            .values(seq=bindparam("seq"), hash=bindparam("hash")),
            moved,
        )


def _clean(text: str) -> str:
    """Mask identity numbers; the common case (none) costs one regex search."""
    return redact_identity_numbers(text) if has_identity_number(text) else text


def append_events(
    session: Session, batch: Sequence[EventFields], *, mac_key: bytes, algorithm: str = "sha256"
) -> list[dict[str, Any]]:
    """Link ``batch`` to the heads of its chains, in order. The caller holds the store's write
    lock (``Store.write``), so no other writer moves the heads meanwhile."""
    if any(fields.time.tzinfo is None for fields in batch):
        raise AuditUnavailable(
            "an audit event needs a timezone-aware time; nothing was changed",
            hint="the clock must give UTC-aware times",
        )
    sealer = MacSealer(mac_key)
    try:
        # A refused request names whatever project the client sent, an identity number too.
        projects = [None if f.project_id is None else redact_identity_numbers(f.project_id)
                    for f in batch]
        chains = {TRAIL} | {project for project in projects if project is not None}
        heads = _heads(session, chains)
        latest = dict(heads)
        seq, prev = latest.get(TRAIL, (0, GENESIS_HASH))
        rows: list[dict[str, Any]] = []
        for fields, project in zip(batch, projects, strict=True):
            seq += 1
            project_seq, project_prev = None, None
            if project is not None:
                last_seq, project_prev = latest.get(project, (0, GENESIS_HASH))
                project_seq = last_seq + 1
            moment = fields.time.astimezone(UTC)
            actor = _clean(fields.actor)
            target = None if fields.target is None else _clean(fields.target)
            details = canonical_details(fields.details)
            if has_identity_number(details):
                details = canonical_details(_masked(fields.details or {}))
            digest = event_hash(
                algorithm=algorithm, seq=seq, time=format_time(moment),
                actor_uid=fields.actor_uid, actor=actor, action=fields.action,
                project_id=project, project_seq=project_seq, target=target,
                outcome=fields.outcome, rule=fields.rule, details=details,
                prev_hash=prev, project_prev_hash=project_prev,
            )
            row = {
                "seq": seq,
                "time": moment,
                "actor_uid": fields.actor_uid,
                "actor": actor,
                "action": fields.action,
                "project_id": project,
                "project_seq": project_seq,
                "target": target,
                "outcome": fields.outcome,
                "rule": fields.rule,
                "details": details,
                "hash_alg": algorithm,
                "prev_hash": prev,
                "project_prev_hash": project_prev,
            }
            row["hash"] = digest
            row["mac"] = sealer.mac(digest)
            rows.append(row)
            prev = digest
            latest[TRAIL] = (seq, digest)
            if project is not None and project_seq is not None:
                latest[project] = (project_seq, digest)
        if rows:
            # Core executemany on the table: the ORM's bulk insert would split a batch into
            # one statement per pattern of empty fields.
            session.connection().execute(insert(_EVENTS), rows)
            _save_heads(session, heads, latest)
    except SQLAlchemyError as exc:
        raise AuditUnavailable(
            f"the audit trail cannot be written ({exc.__class__.__name__}); nothing was changed",
            hint="check the database and the daemon's log",
        ) from None
    session.info.setdefault(_PENDING, []).extend(rows)
    return rows


def append_event(
    session: Session, fields: EventFields, *, mac_key: bytes, algorithm: str = "sha256"
) -> AuditEvent:
    [row] = append_events(session, [fields], mac_key=mac_key, algorithm=algorithm)
    return AuditEvent(**row)


def _log_to_siem(row: dict[str, Any]) -> None:
    siem_log.info(
        "audit_event",
        logger=SIEM_LOGGER,
        seq=row["seq"],
        time=format_time(row["time"]),
        actor_uid=row["actor_uid"],
        actor=row["actor"],
        action=row["action"],
        project=row["project_id"],
        target=row["target"],
        outcome=row["outcome"],
        rule=row["rule"],
        details=row["details"],
        hash=row["hash"],
    )


#: Told the rows of every commit that made audit events durable (the sealer counts them to
#: sign a checkpoint after ``policy.audit.checkpoint_events`` events).
CommitListener = Callable[[Sequence[Mapping[str, Any]]], None]
_commit_listeners: list[CommitListener] = []


def add_commit_listener(listener: CommitListener) -> None:
    _commit_listeners.append(listener)


def remove_commit_listener(listener: CommitListener) -> None:
    if listener in _commit_listeners:
        _commit_listeners.remove(listener)


def _after_commit(session: OrmSession) -> None:
    """The SIEM feed: each event, once committed, as one structured log line (journald or
    syslog forward it). Only committed events: a rolled-back action leaves no line. Then the
    commit listeners; one that fails cannot undo or break a commit that already happened."""
    rows = session.info.pop(_PENDING, ())
    for row in rows:
        _log_to_siem(row)
    for listener in tuple(_commit_listeners) if rows else ():
        try:
            listener(rows)
        except Exception:
            structlog.get_logger("vokterd.audit").exception("commit_listener_failed")


def _after_rollback(session: OrmSession) -> None:
    session.info.pop(_PENDING, None)


event.listen(OrmSession, "after_commit", _after_commit)
event.listen(OrmSession, "after_rollback", _after_rollback)
