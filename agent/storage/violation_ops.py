"""``violations.list`` and ``violations.resolve``: the storage violations people answer for.

The leader answers for a project's violations and closes them with a note saying what was done;
the project's auditors see them but do not act; root, the operator, sees and closes them all,
the host's own findings (a portable medium, no project) included, which nobody else sees. A
violation the caller may not see is "not found", so an outsider learns nothing of it.
"""

from __future__ import annotations

import json
from typing import Any

from sqlmodel import Session, col, select

from agent.access.permissions import Action, Relation, hides_existence, may
from agent.api.dispatch import RequestContext
from agent.api.schemas import ViolationListArgs, ViolationResolveArgs
from agent.audit.redact import redact_identity_numbers
from agent.errors import InvalidRequest, NotFound, PermissionDenied
from agent.projects.service import caller_relation, project_for
from agent.storage.violations import VIOLATION_RESOLVED
from agent.store.tables import Project, Violation

MAX_NOTE = 1000


def violation_view(violation: Violation) -> dict[str, Any]:
    try:
        details = json.loads(violation.details or "{}")
    except ValueError:
        details = {}
    return {
        "id": violation.id,
        "project": violation.project_id,
        "rule": violation.rule,
        "kind": violation.kind,
        "path": violation.path,
        "zone": violation.zone,
        "detected": violation.detected_at.isoformat(),
        "action": violation.action,
        "outcome": violation.action_outcome,
        "action_note": violation.action_note,
        "summary": violation.summary,
        "details": details,
        "status": "open" if violation.resolved_at is None else "resolved",
        "resolved": violation.resolved_at.isoformat() if violation.resolved_at else None,
        "resolved_by": violation.resolved_by,
        "resolution_note": violation.resolution_note,
    }


def _relation(session: Session, ctx: RequestContext, project_id: str | None) -> Relation:
    """The caller's relation to a violation's project; host findings are root's alone."""
    if ctx.caller.uid == 0:
        return Relation.ROOT
    if project_id is None:
        return Relation.NONE
    project = session.get(Project, project_id)
    return Relation.NONE if project is None else caller_relation(session, ctx, project)


def _readable_projects(session: Session, ctx: RequestContext) -> list[str]:
    projects = session.exec(select(Project).order_by(col(Project.id))).all()
    return [p.id for p in projects if may(Action.VIOLATION_READ, caller_relation(session, ctx, p))]


def list_violations(ctx: RequestContext, args: ViolationListArgs) -> list[dict[str, Any]]:
    """A project's violations, or every violation the caller may see, oldest first."""
    query = select(Violation)
    with ctx.services.store.read() as session:
        if args.project is not None:
            project, _ = project_for(session, ctx, args.project, Action.VIOLATION_READ)
            query = query.where(Violation.project_id == project.id)
        elif ctx.caller.uid != 0:
            query = query.where(col(Violation.project_id).in_(_readable_projects(session, ctx)))
        if args.open_only:
            query = query.where(col(Violation.resolved_at).is_(None))
        rows = session.exec(query.order_by(col(Violation.detected_at), col(Violation.id))).all()
        return [violation_view(row) for row in rows]


def check_note(note: str) -> str:
    """A resolution says what was done; one line, so it reads well in a listing and a trail."""
    text = note.strip()
    if not text:
        raise InvalidRequest("a note saying what was done about the violation is required",
                             hint="add --note 'column removed and file re-delivered'")
    if len(text) > MAX_NOTE or not text.isprintable():
        raise InvalidRequest(f"the note must be one line of at most {MAX_NOTE} printable "
                             "characters")
    return redact_identity_numbers(text)


def resolve_violation(ctx: RequestContext, args: ViolationResolveArgs) -> dict[str, Any]:
    """Close an open violation with a note; the audit trail records who closed it and why."""
    note = check_note(args.note)
    with ctx.services.store.write() as session:
        violation = session.get(Violation, args.id)
        relation = Relation.NONE if violation is None else _relation(
            session, ctx, violation.project_id)
        if violation is None or hides_existence(relation):
            raise NotFound(f"no violation {args.id}", hint="see 'vokter violations list'")
        if not may(Action.VIOLATION_RESOLVE, relation):
            raise PermissionDenied(
                f"as {relation.value.replace('_', ' ')} of {violation.project_id} you may not "
                "resolve its violations", hint="the project's leader resolves them")
        if violation.resolved_at is not None:
            raise InvalidRequest(
                f"violation {args.id} was already resolved on "
                f"{violation.resolved_at.date().isoformat()} by {violation.resolved_by}")
        violation.resolved_at = ctx.services.clock.now()
        violation.resolved_by = ctx.caller.name
        violation.resolution_note = note
        session.add(violation)
        session.flush()
        ctx.audit(session, VIOLATION_RESOLVED, project=violation.project_id,
                  target=violation.path, rule=violation.rule,
                  details={"violation": violation.id, "kind": violation.kind, "note": note})
        return violation_view(violation)
