"""Memberships with an expiry date end by themselves (A1: access only until it is no longer needed).

A sweep runs every ``SWEEP_SECONDS`` (so an expiry takes effect within a minute of midnight
after its last day) and removes each due grant exactly as ``vokter member remove`` would: the
gate, the ACLs, the hand-over and the audit trail, with vokterd as the actor. The clock is the
daemon's injected clock, so tests move time instead of waiting for it.
"""

from __future__ import annotations

from typing import Any

import structlog
from sqlmodel import col, select

from agent.access.review import EXPIRY_REASON_PREFIX
from agent.access.rules import due_expiries
from agent.access.service import revoke
from agent.access.sync import as_grant
from agent.api.dispatch import Caller, RequestContext
from agent.errors import VokterError
from agent.services import Services
from agent.store.tables import Member, Project

log = structlog.get_logger("vokterd.expiry")

SWEEP_SECONDS = 30


def expire_memberships(services: Services, actor: Caller) -> list[dict[str, Any]]:
    """End every grant whose last day is over; returns what was ended."""
    now = services.clock.now()
    with services.store.read() as session:
        rows = session.exec(
            select(Member).where(
                col(Member.revoked_at).is_(None), col(Member.expires_at).is_not(None)
            )
        ).all()
        grants = [as_grant(m) for m in rows]
        due_now = set(due_expiries(grants, now))
        due = [m for m, g in zip(rows, grants, strict=True) if g in due_now]
        projects = {m.project_id: session.get(Project, m.project_id) for m in due}
    ended: list[dict[str, Any]] = []
    ctx = RequestContext(actor, services)
    for member in due:
        project = projects[member.project_id]
        if project is None or member.expires_at is None:
            continue
        reason = f"{EXPIRY_REASON_PREFIX} on {member.expires_at.isoformat()}"
        try:
            removal = revoke(ctx, project, member, reason=reason, terminate_processes=False,
                             action="member.expire")
        except VokterError as error:
            log.error("expiry_failed", project=project.id, user=member.user,
                      error=error.one_line())
            continue
        ended.append(removal.view())
    return ended
