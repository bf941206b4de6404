"""``approval.add`` and ``approval.list``: a project's legal basis on record (D1, L3, L4).

Root records an approval (the operator holds the paper, not the leader whose project it
extends); the leader and the auditors read them. Whether one may be recorded is decided by
:mod:`agent.lifecycle.approvals` on plain values; this module reads the project, asks it, and
stores the row with its audit event in one transaction, so an approval is on record exactly
when the trail says it was added.
"""

from __future__ import annotations

from datetime import UTC, date
from typing import Any

from sqlmodel import Session, col, select

from agent.access.permissions import Action
from agent.api.dispatch import RequestContext
from agent.api.schemas import ApprovalAddArgs, ProjectRef
from agent.errors import AlreadyExists
from agent.lifecycle.approvals import ApprovalRequest, ProjectDates, check_approval, same_as
from agent.lifecycle.facts_io import approval_facts
from agent.lifecycle.model import State
from agent.projects.service import project_for
from agent.store.tables import Approval, Project

APPROVAL_ADDED = "approval.added"


def _day(value: date | None) -> str | None:
    return None if value is None else value.isoformat()


def approval_view(row: Approval) -> dict[str, Any]:
    return {
        "id": row.id,
        "project": row.project_id,
        "kind": row.kind,
        "reference": row.reference,
        "valid_until": _day(row.valid_until),
        "retention_until": _day(row.retention_until),
        "clinical_trial": row.clinical_trial,
        "final_report": _day(row.final_report),
        "recorded_by": row.recorded_by,
        "recorded_at": row.recorded_at.isoformat(),
    }


def project_dates(project: Project) -> ProjectDates:
    return ProjectDates(id=project.id, state=State(project.state),
                        created_on=project.created_at.astimezone(UTC).date(),
                        end_date=project.end_date)


def _approvals(session: Session, project_id: str) -> list[Approval]:
    return list(session.exec(
        select(Approval).where(Approval.project_id == project_id).order_by(col(Approval.id))
    ).all())


def add_approval(ctx: RequestContext, args: ApprovalAddArgs) -> dict[str, Any]:
    """Record one approval, checked against the project's dates and the policy."""
    request = ApprovalRequest(kind=args.kind, reference=args.reference,
                              valid_until=args.valid_until,
                              retention_until=args.retention_until,
                              clinical_trial=args.clinical_trial,
                              final_report=args.final_report)
    retention = ctx.services.policies.current().retention
    with ctx.services.store.write() as session:
        project, _ = project_for(session, ctx, args.project, Action.APPROVAL_ADD)
        checked = check_approval(request, project_dates(project), retention, ctx.today())
        existing = _approvals(session, project.id)
        twin = same_as(checked, [approval_facts(row) for row in existing])
        if twin is not None:
            raise AlreadyExists(
                f"this {checked.kind.value} approval ({checked.reference}) is already recorded "
                f"as approval {twin.id} of {project.id}", rule="D1",
                hint=f"see 'vokter approval list {project.id}'")
        row = Approval(project_id=project.id, kind=checked.kind.value,
                       reference=checked.reference, valid_until=checked.valid_until,
                       retention_until=checked.retention_until,
                       clinical_trial=checked.clinical_trial, final_report=checked.final_report,
                       recorded_by=ctx.caller.name, recorded_at=ctx.services.clock.now())
        session.add(row)
        session.flush()
        view = approval_view(row)
        ctx.audit(session, APPROVAL_ADDED, project=project.id, rule=checked.rule,
                  details={"approval": row.id, "kind": view["kind"],
                           "reference": view["reference"], "valid_until": view["valid_until"],
                           "retention_until": view["retention_until"],
                           "clinical_trial": view["clinical_trial"],
                           "final_report": view["final_report"]})
    return {"approval": view, "rule": checked.rule, "warnings": list(checked.warnings)}


def list_approvals(ctx: RequestContext, args: ProjectRef) -> list[dict[str, Any]]:
    """The project's approvals, oldest first."""
    with ctx.services.store.read() as session:
        project, _ = project_for(session, ctx, args.project, Action.APPROVAL_LIST)
        return [approval_view(row) for row in _approvals(session, project.id)]
