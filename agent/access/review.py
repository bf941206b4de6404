"""The auditor's view of access (A2) and the operator's check of the zones against it.

The review lists every grant a project ever had, ended ones included: who, which role, granted
by whom and why, since when and until when. The check walks the zones, repairs what drifted and
records each repair as a violation, so the trail says what was found, not only that it is fixed.
"""

from __future__ import annotations

from typing import Any

from sqlmodel import Session, col, select

from agent.access.enforce import Drift
from agent.access.permissions import Action, may
from agent.access.service import authorize, enforce_plan
from agent.access.sync import leader_reads_after_end, project_plan
from agent.api.dispatch import RequestContext
from agent.api.schemas import AccessReviewArgs, ProjectRef
from agent.audit.redact import redact_identity_numbers
from agent.projects.service import caller_relation
from agent.store.tables import Member, Project

#: The removal reason the expiry sweep records; the review tells expiries from removals by it.
EXPIRY_REASON_PREFIX = "membership expired"
MAX_DRIFT_REPORTED = 100


def review_row(project: Project, member: Member) -> dict[str, Any]:
    if member.revoked_at is None:
        status = "active"
    elif (member.revoke_reason or "").startswith(EXPIRY_REASON_PREFIX):
        status = "expired"
    else:
        status = "removed"
    return {
        "project": project.id,
        "user": member.user,
        "uid": member.uid,
        "role": member.role,
        "granted_by": member.granted_by,
        "reason": member.reason,
        "since": member.granted_at.isoformat(),
        "until": member.revoked_at.isoformat() if member.revoked_at else None,
        "expires": member.expires_at.isoformat() if member.expires_at else None,
        "ended_by": member.revoked_by,
        "end_reason": member.revoke_reason,
        "status": status,
    }


def _reviewable(session: Session, ctx: RequestContext) -> list[Project]:
    projects = session.exec(select(Project).order_by(col(Project.id))).all()
    return [p for p in projects if may(Action.ACCESS_REVIEW, caller_relation(session, ctx, p))]


def access_review(ctx: RequestContext, args: AccessReviewArgs) -> list[dict[str, Any]]:
    """A2: everyone who has or had access, for one project or every project the caller audits."""
    with ctx.services.store.read() as session:
        if args.project is not None:
            projects = [authorize(session, ctx, args.project, Action.ACCESS_REVIEW)]
        else:
            projects = _reviewable(session, ctx)
        rows: list[dict[str, Any]] = []
        for project in projects:
            members = session.exec(
                select(Member)
                .where(Member.project_id == project.id)
                .order_by(col(Member.granted_at), col(Member.id))
            ).all()
            rows.extend(review_row(project, m) for m in members)
    return rows


def drift_view(drift: Drift) -> dict[str, str]:
    return {"path": redact_identity_numbers(drift.path), "found": drift.found, "set": drift.set}


def access_check(ctx: RequestContext, args: ProjectRef) -> dict[str, Any]:
    """Compare every file of the project's zones with the access list and repair the drift."""
    with ctx.services.store.read() as session:
        project = authorize(session, ctx, args.project, Action.ACCESS_CHECK)
        plan = project_plan(session, project,
                            leader_reads_after_end=leader_reads_after_end(ctx.services))
    report = enforce_plan(plan)
    drift = [drift_view(d) for d in report.drift[:MAX_DRIFT_REPORTED]]
    with ctx.services.store.write() as session:
        ctx.audit(
            session,
            "access.check",
            outcome="violation" if report.changed else "ok",
            project=project.id,
            target=project.id,
            rule="A1" if report.changed else None,
            details={"checked": report.checked, "repaired": report.changed,
                     "drift": drift[:20], "errors": len(report.errors)},
        )
    return {"project": project.id, "checked": report.checked, "repaired": report.changed,
            "drift": drift, "errors": [redact_identity_numbers(e) for e in report.errors[:20]]}
