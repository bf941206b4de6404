"""Recording findings as violations, once each, with their audit event in the same transaction.

A finding about a thing in the state already judged (same project, rule, path and fingerprint)
is not recorded again, whether its violation is open or was resolved: a scan after a restart
must not bury the leader in duplicates, nor bring back what a person looked at and closed
("these are account numbers"). A changed file is a new finding.
"""

from __future__ import annotations

import json

from sqlmodel import Session, col, select

from agent.api.dispatch import RequestContext
from agent.audit.redact import redact_identity_numbers
from agent.storage.findings import ActionResult, Finding
from agent.store.tables import Violation

VIOLATION_DETECTED = "violation.detected"
VIOLATION_RESOLVED = "violation.resolved"


def recorded_violation(session: Session, finding: Finding) -> Violation | None:
    """The violation, open or resolved, that recorded this very finding, if there is one."""
    query = select(Violation).where(
        Violation.rule == finding.rule,
        Violation.path == redact_identity_numbers(finding.path),
        Violation.fingerprint == finding.fingerprint,
    )
    if finding.project is None:
        query = query.where(col(Violation.project_id).is_(None))
    else:
        query = query.where(Violation.project_id == finding.project)
    return session.exec(query.limit(1)).first()


def record_finding(
    session: Session, context: RequestContext, finding: Finding, result: ActionResult
) -> Violation | None:
    """Store ``finding`` with what was done about it and audit it; None if recorded before."""
    if recorded_violation(session, finding) is not None:
        return None
    path = redact_identity_numbers(finding.path)
    violation = Violation(
        project_id=finding.project,
        rule=finding.rule,
        kind=finding.kind,
        path=path,
        zone=finding.zone,
        fingerprint=finding.fingerprint,
        detected_at=context.services.clock.now(),
        action=finding.response.value,
        action_outcome=result.outcome.value,
        action_note=redact_identity_numbers(result.note)[:1000],
        summary=redact_identity_numbers(finding.summary)[:1000],
        details=redact_identity_numbers(json.dumps(dict(finding.details), sort_keys=True)),
    )
    session.add(violation)
    session.flush()
    context.audit(
        session,
        VIOLATION_DETECTED,
        outcome="failed" if result.outcome.value == "failed" else "ok",
        project=finding.project,
        target=path,
        rule=finding.rule,
        details={
            "violation": violation.id,
            "kind": finding.kind,
            "zone": finding.zone,
            "action": finding.response.value,
            "action_outcome": result.outcome.value,
            "action_note": violation.action_note,
            "summary": violation.summary,
        },
    )
    return violation
