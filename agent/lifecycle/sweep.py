"""The sweep: ask the decision about every project and carry out what is due (L1-L5).

Run by the scheduler (daily, at start to catch up on days the daemon was down, and on each
project's next date) and by ``vokter lifecycle run``. A project may owe several steps at once
after a long stop (ended, then retained); each is applied in turn, each through the one
transition function. Notices to the leader are recorded once each, in the audit trail and the
log. A disposal is started and carried through here (:mod:`agent.lifecycle.disposal`),
resumed from its journal by the next sweep if it was interrupted.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Any

import structlog
from sqlmodel import Session, col, select

from agent.api.dispatch import Caller, RequestContext
from agent.errors import VokterError
from agent.lifecycle.decision import decide
from agent.lifecycle.disposal import discard_journals, dispose
from agent.lifecycle.disposal_guard import daemon_id
from agent.lifecycle.facts_io import project_facts
from agent.lifecycle.model import ProjectFacts, State
from agent.lifecycle.states import Event
from agent.lifecycle.states import disposed as disposed_state
from agent.lifecycle.transitions import apply_event
from agent.policy.model import Policy
from agent.services import Services
from agent.store.tables import AuditEvent, Project

log = structlog.get_logger("vokter.lifecycle")

NOTICE = "lifecycle.notice"
#: A project owes at most this many steps at once (end, retain, close): a bound, not a count.
_MAX_STEPS = 8
#: What the sweep carries out itself.
_SWEPT = frozenset({Event.END, Event.RETAIN, Event.DISPOSE, Event.CLOSE})
_DONE = {"delete": Event.DELETED.value, "anonymise": Event.ANONYMISED.value,
         "archive": Event.ARCHIVED.value}


@dataclass(frozen=True, slots=True)
class Swept:
    project: str
    state: str
    applied: tuple[str, ...]
    notices: tuple[str, ...]
    #: The event still due that the sweep does not carry out (the disposal), if any.
    waiting: str | None
    held: bool

    def view(self) -> dict[str, Any]:
        return {"project": self.project, "state": self.state, "applied": list(self.applied),
                "notices": list(self.notices), "waiting": self.waiting, "held": self.held}


def _project_ids(services: Services, only: str | None) -> list[str]:
    with services.store.read() as session:
        query = select(Project.id).order_by(col(Project.id))
        if only is not None:
            query = query.where(Project.id == only)
        return list(session.exec(query).all())


def _sent(session: Session, project_id: str, key: str) -> bool:
    return session.exec(
        select(AuditEvent.seq).where(AuditEvent.action == NOTICE,
                                     AuditEvent.project_id == project_id,
                                     AuditEvent.target == key)
    ).first() is not None


def still_due(event: Event, method: str, policy: Policy,
              today: date) -> Callable[[ProjectFacts], bool]:
    """Whether ``event`` is still due, with the same disposal method (an approval recorded
    meanwhile may have changed it), asked again under the project's lock."""

    def due(facts: ProjectFacts) -> bool:
        plan = decide(facts, policy, today)
        return plan.due is event and plan.method == method

    return due


def sweep_project(ctx: RequestContext, project_id: str) -> Swept:
    services = ctx.services
    applied: list[str] = []
    notices: list[str] = []
    for _ in range(_MAX_STEPS):
        with services.store.read() as session:
            row = session.get(Project, project_id)
            if row is None:
                raise LookupError(project_id)
            facts = project_facts(session, row)
        plan = decide(facts, services.policies.current(), services.clock.now().date())
        for notice in plan.notices_due:
            # Looked up and recorded in one write transaction: the daily job, the catch-up,
            # the project's own job and a person's run may meet, and writes are serialised.
            with services.store.write() as session:
                if _sent(session, project_id, notice.key):
                    continue
                ctx.audit(session, NOTICE, project=project_id, target=notice.key,
                          rule=notice.rule, details={"to": "leader", "text": notice.words})
            log.info("lifecycle_notice", project=project_id, notice=notice.key,
                     text=notice.words)
            notices.append(notice.key)
        if facts.state is State.DISPOSING and not plan.held_by:
            # Begun, or interrupted (a crash, a hold now released): carried on from its journal.
            disposed = dispose(services, ctx.caller, project_id)
            if disposed.outcome != "done":
                return Swept(project_id, facts.state.value, tuple(applied), tuple(notices),
                             f"disposal {disposed.outcome}", bool(plan.held_by))
            applied.append(_DONE[disposed.method])
            continue
        if disposed_state(facts.state):
            discard_journals(services, project_id)  # a crash after the last step left them
        if plan.due is None or plan.due not in _SWEPT:
            waiting = None if plan.due is None else plan.due.value
            return Swept(project_id, facts.state.value, tuple(applied), tuple(notices),
                         waiting, bool(plan.held_by))
        # The disposal's method is fixed when it begins: a policy changed mid-run must not
        # turn a half-done anonymisation into a deletion, or the other way round.
        details = {"by": "schedule"} | (
            {"method": plan.method, "daemon": daemon_id(services)}
            if plan.due is Event.DISPOSE else {})
        done = apply_event(services, project_id, plan.due, audit=ctx.audit,
                           details=details, expect=facts.state,
                           recheck=still_due(plan.due, plan.method,
                                             services.policies.current(), plan.today))
        if done is not None:  # else another daemon took the step: decide again
            log.info("lifecycle_step", project=project_id, step=plan.due.value,
                     state=done.after.value, rule=done.rule)
            applied.append(plan.due.value)
    raise RuntimeError(f"{project_id}: more than {_MAX_STEPS} steps due at once")


def sweep(services: Services, actor: Caller, *, only: str | None = None) -> list[Swept]:
    """Every project (or ``only``); one project's failure is logged and audited, and the
    sweep goes on with the next: the daemon never stops over one project."""
    ctx = RequestContext(actor, services)
    results: list[Swept] = []
    for project_id in _project_ids(services, only):
        try:
            results.append(sweep_project(ctx, project_id))
        except Exception as error:  # one project never stops the sweep of the others
            text = error.one_line() if isinstance(error, VokterError) else (
                f"{type(error).__name__}: {error}")
            results.append(Swept(project_id, "unknown", (), (), f"failed: {text}", False))
            log.error("lifecycle_sweep_failed", project=project_id, error=text)
            with services.store.write() as session:
                ctx.audit(session, "lifecycle.sweep_failed", outcome="failed",
                          project=project_id, details={"error": text})
    return results
