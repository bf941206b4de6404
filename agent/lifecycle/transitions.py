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

from agent.access.processes import find_holders
from agent.access.service import MAX_REPORTED_PROCESSES, enforce_plan
from agent.access.sync import (
    active_members,
    leader_reads_after_end,
    project_plan,
    publish_gate_view,
)
from agent.audit.redact import redact_identity_numbers
from agent.lifecycle.facts_io import project_facts
from agent.lifecycle.model import ProjectFacts, State
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
                expect: State | None = None,
                recheck: Callable[[ProjectFacts], bool] | None = None) -> Applied | None:
    """Move the project by ``event`` (refused as the table says), record and audit it in one
    transaction, then carry the new access through to the gate and the ACLs.

    ``audit(session, action, project=, target=, rule=, details=)`` records the event under
    the caller's identity (a person's request, or the daemon's own sweep). ``end_date``, when
    given, is stored in the same transaction (ending early, or a later end with REK).
    ``expect``: the state the caller decided from; when another daemon (or request) moved
    the project meanwhile, nothing is done and None returned. The row is locked while read
    and written (PostgreSQL), so two daemons cannot both take the step. ``recheck`` is asked
    again with the facts read under that lock (an end date moved, a retention recorded or a
    hold placed since the caller decided): when it says no, nothing is done."""
    with services.store.write() as session:
        project = session.get(Project, project_id, with_for_update=True)
        if project is None:
            raise LookupError(project_id)
        before = State(project.state)
        if expect is not None and before is not expect:
            return None
        if recheck is not None and not recheck(project_facts(session, project)):
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
        # Whose processes may still hold zone files (the ended plan itself gives every entry
        # to root: owner bits would outlast the ACL, L8).
        owners = {row.uid for row in active_members(session, project_id)}
        if project.leader_uid is not None:
            owners.add(project.leader_uid)
    changed = 0
    if event in _ACCESS_CHANGES:
        publish_gate_view(services)
        changed = enforce_plan(plan).changed
    if event is Event.END:
        _report_holders(services, project_id, owners, [zone.path for zone in plan.zones],
                        audit)
    return Applied(project_id, event, before, transition.target, transition.rule, changed)


def _report_holders(services: Services, project_id: str, uids: set[int], zones: list[str],
                    audit: Audit) -> None:
    """Processes that opened zone files before the end keep their descriptors: no gate sees
    them any more. They are named in the trail, for the operator to end (as 'vokter member
    remove --terminate' does for one person)."""
    holds = [hold for uid in sorted(uids) for hold in find_holders(uid, zones)]
    if not holds:
        return
    with services.store.write() as session:
        audit(session, "lifecycle.open_files", project=project_id, target=project_id,
              rule="L8",
              details={"processes": [{"pid": hold.pid, "user": hold.user,
                                      "program": redact_identity_numbers(hold.program)}
                                     for hold in holds[:MAX_REPORTED_PROCESSES]]})
