"""``lifecycle.plan`` and ``project.end``: what the project's end brings, and ending it (L1).

The plan is the decision (:func:`agent.lifecycle.decision.decide`) in words, for the leader,
the auditors and root. Ending early is the leader's or root's act; moving the end later needs
a REK approval on record that covers the new date (L1), and is possible only until disposal
has begun: reuse after that needs a new project (L10).
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from agent.access.permissions import Action, may, relation_of
from agent.api.dispatch import RequestContext
from agent.api.schemas import LifecycleRunArgs, ProjectEndArgs, ProjectRef
from agent.errors import Failed, InvalidRequest, PermissionDenied, RuleViolation
from agent.lifecycle.decision import Plan, decide
from agent.lifecycle.facts_io import project_facts
from agent.lifecycle.model import ApprovalKind, ProjectFacts, State
from agent.lifecycle.states import Event
from agent.lifecycle.sweep import sweep
from agent.lifecycle.transitions import Applied, apply_event
from agent.projects.rules import check_end_date
from agent.projects.service import project_for
from agent.store.tables import Project


def plan_view(plan: Plan) -> dict[str, Any]:
    return {
        "project": plan.project,
        "state": plan.state.value,
        "today": plan.today.isoformat(),
        "due": None if plan.due is None else plan.due.value,
        "method": plan.method,
        "ends_on": plan.ends_on.isoformat(),
        "disposal_on": None if plan.disposal_on is None else plan.disposal_on.isoformat(),
        "retained_until": None if plan.retained_until is None
        else plan.retained_until.isoformat(),
        "held_by": list(plan.held_by),
        "copies_open": list(plan.copies_open),
        "steps": [
            {"on": None if step.on is None else step.on.isoformat(),
             "event": None if step.event is None else step.event.value,
             "rule": step.rule, "what": step.words}
            for step in plan.steps
        ],
        "lines": plan.lines(),
    }


def lifecycle_plan(ctx: RequestContext, args: ProjectRef) -> dict[str, Any]:
    with ctx.services.store.read() as session:
        project, _ = project_for(session, ctx, args.project, Action.LIFECYCLE_PLAN)
        facts = project_facts(session, project)
    return plan_view(decide(facts, ctx.services.policies.current(), ctx.today()))


def lifecycle_run(ctx: RequestContext, args: LifecycleRunArgs) -> list[dict[str, Any]]:
    """What the scheduler would do now, done now (root): every project, or one."""
    if args.project is not None:
        with ctx.services.store.read() as session:
            project_for(session, ctx, args.project, Action.LIFECYCLE_RUN)
    elif not may(Action.LIFECYCLE_RUN, relation_of(ctx.caller.uid, None)):
        raise PermissionDenied("only root carries out the project-end schedule by hand",
                               hint="the daemon does it by itself every day")
    scheduler = ctx.services.lifecycle
    if scheduler is not None:
        results = scheduler.run(args.project, actor=ctx.caller)
    else:
        results = sweep(ctx.services, ctx.caller, only=args.project)
    return [result.view() for result in results]


def _covered_by_rek(facts: ProjectFacts, end_date: date) -> bool:
    return any(approval.kind is ApprovalKind.REK and approval.valid_until is not None
               and approval.valid_until >= end_date for approval in facts.approvals)


def end_project(ctx: RequestContext, args: ProjectEndArgs) -> dict[str, Any]:
    """End ``project`` now, or on a later day (``on``); a day after its current end date
    moves the end later, with REK's word (L1). Ending now never moves the end later: an
    ended project is not reopened by asking again, and an overdue one keeps its end date."""
    today = ctx.today()
    with ctx.services.store.read() as session:
        project, _ = project_for(session, ctx, args.project, Action.PROJECT_END)
        facts = project_facts(session, project)
    if args.on is None or args.on == today:
        if facts.state is not State.ACTIVE:
            raise RuleViolation(f"{project.id} has already ended ({facts.state.value})",
                                rule="L1", hint=f"see 'vokter lifecycle plan {project.id}'")
        new_end = min(facts.end_date, today - timedelta(days=1))
        applied = _take(ctx, project.id, Event.END, facts, new_end,
                        {"early": new_end < facts.end_date,
                         "planned_end": facts.end_date.isoformat()})
        return {"project": project.id, "state": applied.after.value,
                "end_date": new_end.isoformat(), "ends_on": today.isoformat(),
                "acl_changed": applied.acl_changed}
    on = args.on
    if on < today:
        raise InvalidRequest(f"{on.isoformat()} is in the past: a project cannot end before "
                             "today", rule="L1", hint="leave out --on to end it today")
    new_end = check_end_date(on - timedelta(days=1), today - timedelta(days=1))
    if new_end > facts.end_date:
        return _extend(ctx, project, facts, new_end)
    if facts.state is not State.ACTIVE:
        raise RuleViolation(f"{project.id} has already ended ({facts.state.value})", rule="L1",
                            hint=f"see 'vokter lifecycle plan {project.id}'")
    _move_end(ctx, project.id, new_end, facts.end_date, rule="L1")
    return {"project": project.id, "state": facts.state.value, "end_date": new_end.isoformat(),
            "ends_on": on.isoformat()}


def _extend(ctx: RequestContext, project: Project, facts: ProjectFacts,
            new_end: date) -> dict[str, Any]:
    """A later end: REK must have approved the project until then (L1)."""
    if not _covered_by_rek(facts, new_end):
        raise RuleViolation(
            f"no REK approval on record covers {project.id} until {new_end.isoformat()}",
            rule="L1",
            hint=f"record it first: vokter approval add {project.id} --kind rek --ref REF "
                 f"--valid-until {new_end.isoformat()}")
    if facts.state is State.ACTIVE:
        _move_end(ctx, project.id, new_end, facts.end_date, rule="L1")
        return {"project": project.id, "state": facts.state.value,
                "end_date": new_end.isoformat()}
    applied = _take(ctx, project.id, Event.EXTEND, facts, new_end,
                    {"planned_end": facts.end_date.isoformat()})
    return {"project": project.id, "state": applied.after.value,
            "end_date": new_end.isoformat(), "acl_changed": applied.acl_changed}


def _take(ctx: RequestContext, project_id: str, event: Event, facts: ProjectFacts,
          new_end: date, details: dict[str, Any]) -> Applied:
    applied = apply_event(ctx.services, project_id, event, audit=ctx.audit, end_date=new_end,
                          details=details, expect=facts.state,
                          recheck=lambda now: now.end_date == facts.end_date)
    if applied is None:
        raise Failed(f"{project_id} changed state while this request ran; nothing was done",
                     hint=f"see 'vokter lifecycle plan {project_id}' and try again")
    _reschedule(ctx, project_id)
    return applied


def _move_end(ctx: RequestContext, project_id: str, new_end: date, old_end: date, *,
              rule: str) -> None:
    """Move an active project's end date, under the row's lock, if nothing moved it since."""
    with ctx.services.store.write() as session:
        row = session.get(Project, project_id, with_for_update=True)
        if row is None or row.state != State.ACTIVE.value or row.end_date != old_end:
            raise Failed(f"{project_id} changed while this request ran; nothing was done",
                         hint=f"see 'vokter lifecycle plan {project_id}' and try again")
        row.end_date = new_end
        session.add(row)
        ctx.audit(session, "project.end_moved", project=project_id, target=project_id, rule=rule,
                  details={"from": old_end.isoformat(), "to": new_end.isoformat()})
    _reschedule(ctx, project_id)


def _reschedule(ctx: RequestContext, project_id: str) -> None:
    """The project's own job follows its new dates at once, not at the next daily sweep."""
    if ctx.services.lifecycle is not None:
        ctx.services.lifecycle.reschedule(project_id)
