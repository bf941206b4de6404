"""Carrying out one state change: the store, the audit trail and the access that follows.

Why one function: the end of a project is the same act whether the leader ends it early, the
daily sweep finds its end date passed, or the daemon catches up after being down; each goes
through :func:`apply_event`, which asks the transition table (:mod:`agent.lifecycle.states`)
and then makes access follow the new state (L8: members lose it, the leader keeps reading).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlmodel import Session, col, select

from agent.access.service import enforce_plan
from agent.access.sync import (
    active_members,
    leader_reads_after_end,
    project_plan,
    publish_gate_view,
)
from agent.lifecycle.model import State
from agent.lifecycle.states import Event, advance
from agent.services import Services
from agent.store.tables import LegalHold, Project

#: Transitions after which the zones admit other people than before.
_ACCESS_CHANGES = frozenset({Event.END, Event.EXTEND})

Audit = Callable[..., Any]


@dataclass(frozen=True, slots=True)
class Applied:
    project: str
    event: Event
    before: State
    after: State
    rule: str
    acl_changed: int


def held(session: Session, project_id: str) -> bool:
    """Whether a legal hold stands on the project (L5)."""
    return session.exec(
        select(LegalHold).where(LegalHold.project_id == project_id,
                                col(LegalHold.released_at).is_(None))
    ).first() is not None


def apply_event(services: Services, project_id: str, event: Event, *, audit: Audit,
                details: dict[str, Any] | None = None, end_date: date | None = None,
                expect: State | None = None) -> Applied | None:
    """Move the project by ``event`` (refused as the table says), record and audit it in one
    transaction, then carry the new access through to the gate and the ACLs.

    ``audit(session, action, project=, target=, rule=, details=)`` records the event under
    the caller's identity (a person's request, or the daemon's own sweep). ``end_date``, when
    given, is stored in the same transaction (ending early, or a later end with REK).
    ``expect``: the state the caller decided from; when another daemon (or request) moved
    the project meanwhile, nothing is done and None returned. The row is locked while read
    and written (PostgreSQL), so two daemons cannot both take the step."""
    with services.store.write() as session:
        project = session.get(Project, project_id, with_for_update=True)
        if project is None:
            raise LookupError(project_id)
        before = State(project.state)
        if expect is not None and before is not expect:
            return None
        transition = advance(before, event, held=held(session, project_id))
        project.state = transition.target.value
        if end_date is not None:
            project.end_date = end_date
        session.add(project)
        audit(session, f"lifecycle.{event.value}", project=project_id, target=project_id,
              rule=transition.rule,
              details={"from": before.value, "to": transition.target.value,
                       "end_date": project.end_date.isoformat(), **(details or {})})
        session.flush()
        plan = project_plan(session, project,
                            leader_reads_after_end=leader_reads_after_end(services))
        # Owners keep their owner bits whatever the ACL says: at the end, every file of the
        # zones owned by the leader or anyone with a role goes to root, or the leader could
        # still write, and a member read, their own files (L8).
        owners = {row.uid for row in active_members(session, project_id)}
        if project.leader_uid is not None:
            owners.add(project.leader_uid)
    changed = 0
    if event in _ACCESS_CHANGES:
        publish_gate_view(services)
        handover = {uid: 0 for uid in owners} if event is Event.END else None
        changed = enforce_plan(plan, handover).changed
    return Applied(project_id, event, before, transition.target, transition.rule, changed)
