"""Appending to the audit trail inside the caller's transaction.

The event is added to the same session as the change it records, so both commit or neither
does: an action whose audit event cannot be written does not happen (fail closed).
"""

from __future__ import annotations

from datetime import UTC

from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session, col, select

from agent.audit.chain import GENESIS_HASH, EventFields, canonical_details, link_hash
from agent.errors import AuditUnavailable
from agent.store.tables import AuditEvent


def append_event(session: Session, fields: EventFields, algorithm: str = "sha256") -> AuditEvent:
    """Link ``fields`` to the head of the chain. The caller holds the store's write lock."""
    if fields.time.tzinfo is None:
        raise AuditUnavailable(
            "an audit event needs a timezone-aware time; nothing was changed",
            hint="the clock must give UTC-aware times",
        )
    try:
        newest = select(AuditEvent).order_by(col(AuditEvent.seq).desc()).limit(1)
        head = session.exec(newest).first()
        seq = 1 if head is None else head.seq + 1
        prev = GENESIS_HASH if head is None else head.hash
        row = AuditEvent(
            seq=seq,
            # Stored (and so hashed) in UTC, so the chain re-verifies from the stored row.
            time=fields.time.astimezone(UTC),
            actor_uid=fields.actor_uid,
            actor=fields.actor,
            action=fields.action,
            project_id=fields.project_id,
            target=fields.target,
            outcome=fields.outcome,
            rule=fields.rule,
            details=canonical_details(fields.details),
            hash_alg=algorithm,
            prev_hash=prev,
            hash="",
        )
        row.hash = link_hash(row)
        session.add(row)
        session.flush()
    except SQLAlchemyError as exc:
        raise AuditUnavailable(
            f"the audit trail cannot be written ({exc.__class__.__name__}); nothing was changed",
            hint="check the database and the daemon's log",
        ) from None
    return row
