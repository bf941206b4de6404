"""``notices.list``: what the schedule told each leader about their project's end (L1, L3).

A notice is recorded once, as an audit event (``lifecycle.notice``) and a log line, when its
day comes (:mod:`agent.lifecycle.sweep`); this lists them for the people who may see the
project's plan: root, the leader, the project's auditors. Nobody else learns of them.
"""

from __future__ import annotations

import json
from typing import Any

from sqlmodel import col, select

from agent.access.permissions import Action, may
from agent.api.dispatch import RequestContext
from agent.api.schemas import NoArgs
from agent.lifecycle.sweep import NOTICE
from agent.projects.service import caller_relation, visible_projects
from agent.store.tables import AuditEvent


def list_notices(ctx: RequestContext, _args: NoArgs) -> list[dict[str, Any]]:
    with ctx.services.store.read() as session:
        projects = [
            project.id for project in visible_projects(session, ctx.caller.uid)
            if may(Action.LIFECYCLE_PLAN, caller_relation(session, ctx, project))
        ]
        if not projects:
            return []
        rows = session.exec(
            select(AuditEvent).where(AuditEvent.action == NOTICE,
                                     col(AuditEvent.project_id).in_(projects))
            .order_by(col(AuditEvent.seq))
        ).all()
    return [
        {"project": row.project_id, "time": row.time.isoformat(), "notice": row.target,
         "rule": row.rule, "text": json.loads(row.details).get("text", "")}
        for row in rows
    ]
