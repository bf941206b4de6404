"""The store's rows as the decision's facts: the one place the lifecycle reads them.

Why apart from the decision: :mod:`agent.lifecycle.decision` takes plain values so that tests
walk decades without a database; everything that asks it (the plan command, the scheduler's
sweep, the disposal run) builds those values here, the same way.
"""

from __future__ import annotations

from datetime import UTC

from sqlmodel import Session, col, select

from agent.lifecycle.model import (
    ApprovalFacts,
    ApprovalKind,
    CopyFacts,
    HoldFacts,
    HoldReason,
    ProjectFacts,
    State,
)
from agent.store.tables import Approval, LegalHold, Project, RegisteredCopy


def approval_facts(row: Approval) -> ApprovalFacts:
    assert row.id is not None
    return ApprovalFacts(id=row.id, kind=ApprovalKind(row.kind), reference=row.reference,
                         valid_until=row.valid_until, retention_until=row.retention_until,
                         clinical_trial=row.clinical_trial, final_report=row.final_report)


def hold_facts(row: LegalHold) -> HoldFacts:
    assert row.id is not None
    released = None if row.released_at is None else row.released_at.astimezone(UTC).date()
    return HoldFacts(id=row.id, reason=HoldReason(row.reason), reference=row.reference,
                     released_on=released)


def copy_facts(row: RegisteredCopy) -> CopyFacts:
    assert row.id is not None
    return CopyFacts(id=row.id, location=row.location,
                     disposed_confirmed=row.disposed_confirmed_at is not None)


def project_facts(session: Session, project: Project) -> ProjectFacts:
    """Everything the decision needs about ``project``, read in one session."""
    approvals = session.exec(select(Approval).where(Approval.project_id == project.id)
                             .order_by(col(Approval.id))).all()
    holds = session.exec(select(LegalHold).where(LegalHold.project_id == project.id)
                         .order_by(col(LegalHold.id))).all()
    copies = session.exec(select(RegisteredCopy).where(RegisteredCopy.project_id == project.id)
                          .order_by(col(RegisteredCopy.id))).all()
    return ProjectFacts(
        id=project.id,
        end_date=project.end_date,
        state=State(project.state),
        approvals=tuple(approval_facts(row) for row in approvals),
        holds=tuple(hold_facts(row) for row in holds),
        copies=tuple(copy_facts(row) for row in copies),
    )
