"""Accepting damage: root's deliberate, audited act that lets sealing go on after an attack.

The sealer never signs over damage, and some damage never goes away: rows deleted for good, or
a database restored from a backup older than the last checkpoint (which is, by design, exactly
what a rollback looks like). Sealing would then stay stopped forever. Root may instead accept
the trail as it stands: an ``audit.damage_accepted`` event records what was found and why it
was accepted, and a new checkpoint signs the heads as they are now, that event included. The
checkpoint kept before is moved aside in the key store, as evidence.

Nothing is hidden by it: the damaged events still fail ``vokter audit verify`` from the start
of the trail, and a checkpoint an auditor kept from before still shows a rollback. Accepting
only says "from here on, seal again", and the trail says who said so.
"""

from __future__ import annotations

from sqlalchemy import func
from sqlmodel import Session, col, select

from agent.api.dispatch import Caller, RequestContext
from agent.audit.checkpoint import ChainHead, Checkpoint
from agent.audit.seal import extend, sign_checkpoint, store_checkpoint
from agent.audit.sealing import (
    SealResult,
    TrailDamage,
    keep_in_key_store,
    previous_or_damage,
)
from agent.audit.verify import EMPTY_CHAIN
from agent.errors import InvalidRequest
from agent.services import Services
from agent.store.tables import AuditEvent

ACCEPT_ACTION = "audit.damage_accepted"


def current_heads(session: Session) -> tuple[ChainHead, dict[str, ChainHead]]:
    """The newest stored event of the trail and of each project's chain, as they are now (the
    rows themselves, not the ``audit_head`` cache, which whoever damaged the rows could set)."""
    last = session.exec(
        select(AuditEvent.seq, AuditEvent.hash).order_by(col(AuditEvent.seq).desc()).limit(1)
    ).first()
    trail = ChainHead(last[0], last[1]) if last is not None else EMPTY_CHAIN
    newest = (
        select(AuditEvent.project_id, func.max(AuditEvent.project_seq).label("newest"))
        .where(col(AuditEvent.project_id).is_not(None))
        .group_by(col(AuditEvent.project_id))
        .subquery()
    )
    rows = session.exec(
        select(AuditEvent.project_id, AuditEvent.project_seq, AuditEvent.hash).join(
            newest,
            (col(AuditEvent.project_id) == newest.c.project_id)
            & (col(AuditEvent.project_seq) == newest.c.newest),
        )
    ).all()
    projects = {str(project): ChainHead(int(seq), digest) for project, seq, digest in rows
                if project is not None and seq is not None}
    return trail, projects


def accept_damage(services: Services, actor: Caller, reason: str) -> SealResult:
    """Record the damage as accepted by ``actor`` and sign the trail as it stands. Refused
    when the trail holds: there is nothing to accept, and nothing is changed."""
    keys = services.audit_keys
    now = services.clock.now()
    with services.store.write() as session:
        previous, damage = previous_or_damage(session, services)
        if damage is None:
            against = previous.checkpoint if previous else None
            _, found = extend(session, keys, now, against)
            if found is None:
                raise InvalidRequest(
                    "the trail holds from its last checkpoint on; there is no damage to accept",
                    rule="A5", hint="'vokter audit checkpoint' without --accept-damage",
                )
            damage = TrailDamage.of(found, against)
        RequestContext(actor, services).audit(
            session, ACCEPT_ACTION, outcome="ok", rule="A5",
            details={**damage.details(), "reason": reason},
        )
        session.flush()
        trail, projects = current_heads(session)
        made = sign_checkpoint(
            Checkpoint(time=now, key_id=keys.key_id, trail=trail, projects=projects), keys
        )
        store_checkpoint(session, made)
    keep_in_key_store(services.config.key_store, keys, made, replace=True)
    return SealResult(made, made, damage, recorded=True)
