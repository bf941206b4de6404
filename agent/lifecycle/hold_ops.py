"""``hold.place``, ``hold.release`` and ``hold.list``: legal holds as people place and lift them
(L5).

A hold may be placed in any state of the project: it freezes every state after active until it
is released (the decision reads it through :mod:`agent.lifecycle.facts_io`). Root and the
project's auditors place and release; the leader sees the holds but may touch none; anyone
else is told a hold they ask for by number does not exist. Each change is audited in the
transaction that makes it, with the reason, the case reference and the note.
"""

from __future__ import annotations

from typing import Any

from sqlmodel import Session, col, select

from agent.access.permissions import Action, Relation, hides_existence, may
from agent.api.dispatch import RequestContext
from agent.api.schemas import HoldListArgs, HoldPlaceArgs, HoldReleaseArgs
from agent.errors import NotFound, Refused
from agent.lifecycle.disposal_guard import hold_placed
from agent.lifecycle.facts_io import hold_facts
from agent.lifecycle.holds import (
    HOLD_PLACED,
    HOLD_RELEASED,
    WHO_PLACES,
    WHO_SEES,
    check_not_standing,
    check_note,
    check_reason,
    check_reference,
    check_releasable,
    refusal,
)
from agent.projects.service import caller_relation, project_for, visible_projects
from agent.store.tables import LegalHold, Project

_DOING = {
    Action.HOLD_PLACE: "place a legal hold on it",
    Action.HOLD_RELEASE: "release a legal hold on it",
    Action.HOLD_LIST: "see its legal holds",
}


def hold_view(row: LegalHold) -> dict[str, Any]:
    return {
        "id": row.id,
        "project": row.project_id,
        "reason": row.reason,
        "reference": row.reference,
        "note": row.note,
        "status": "open" if row.released_at is None else "released",
        "placed_by": row.placed_by,
        "placed": row.placed_at.isoformat(),
        "released_by": row.released_by,
        "released": row.released_at.isoformat() if row.released_at else None,
        "release_note": row.release_note,
    }


def _guard(action: Action, relation: Relation, project_id: str, hold_id: int | None = None
           ) -> None:
    refused: Refused | None = refusal(
        action, relation, project_id, rule="L5", doing=_DOING[action],
        who_may=WHO_SEES if action is Action.HOLD_LIST else WHO_PLACES,
        record=None if hold_id is None else f"legal hold {hold_id}", see=Action.HOLD_LIST,
        listing="'vokter hold list'")
    if refused is not None:
        raise refused


def _holds_of(session: Session, project_ids: list[str], open_only: bool) -> list[LegalHold]:
    query = select(LegalHold).where(col(LegalHold.project_id).in_(project_ids))
    if open_only:
        query = query.where(col(LegalHold.released_at).is_(None))
    return list(session.exec(query.order_by(col(LegalHold.id))).all())


def place_hold(ctx: RequestContext, args: HoldPlaceArgs) -> dict[str, Any]:
    """Place a hold on the project, whatever its state; nothing of it is disposed of until the
    hold is released."""
    with ctx.services.store.write() as session:
        project, relation = project_for(session, ctx, args.project, Action.PROJECT_SHOW)
        _guard(Action.HOLD_PLACE, relation, project.id)
        reason = check_reason(args.reason)
        reference = check_reference(args.reference)
        note = check_note(args.note, "placing")
        standing = _holds_of(session, [project.id], open_only=True)
        check_not_standing([hold_facts(row) for row in standing], reason, reference)
        row = LegalHold(project_id=project.id, reason=reason.value, reference=reference,
                        note=note, placed_by=ctx.caller.name, placed_at=ctx.services.clock.now())
        session.add(row)
        session.flush()
        ctx.audit(session, HOLD_PLACED, project=project.id, target=f"legal hold {row.id}",
                  rule="L5", details={"hold": row.id, "reason": reason.value,
                                      "reference": reference, "note": note,
                                      "state": project.state})
        placed = {**hold_view(row), "project_state": project.state}
    hold_placed(project.id)  # a disposal running in this daemon stops before its next file
    return placed


def release_hold(ctx: RequestContext, args: HoldReleaseArgs) -> dict[str, Any]:
    """Lift a standing hold; the project's lifecycle goes on from where it was frozen."""
    with ctx.services.store.write() as session:
        row = session.get(LegalHold, args.id)
        project = None if row is None else session.get(Project, row.project_id)
        if row is None or project is None:
            raise NotFound(f"no legal hold {args.id}", hint="see 'vokter hold list'")
        relation = caller_relation(session, ctx, project)
        if not hides_existence(relation):
            ctx.concerns(project.id, f"legal hold {row.id}")
        _guard(Action.HOLD_RELEASE, relation, project.id, row.id)
        check_releasable(hold_facts(row))
        note = check_note(args.note, "releasing")
        row.released_by = ctx.caller.name
        row.released_at = ctx.services.clock.now()
        row.release_note = note
        session.add(row)
        session.flush()
        ctx.audit(session, HOLD_RELEASED, project=project.id, target=f"legal hold {row.id}",
                  rule="L5", details={"hold": row.id, "reason": row.reason,
                                      "reference": row.reference, "placed_by": row.placed_by,
                                      "note": note, "state": project.state})
        placed = {**hold_view(row), "project_state": project.state}
    hold_placed(project.id)  # a disposal running in this daemon stops before its next file
    return placed


def list_holds(ctx: RequestContext, args: HoldListArgs) -> list[dict[str, Any]]:
    """One project's holds, or every project's the caller may see (root: all), oldest first."""
    with ctx.services.store.read() as session:
        if args.project is not None:
            project, relation = project_for(session, ctx, args.project, Action.PROJECT_SHOW)
            _guard(Action.HOLD_LIST, relation, project.id)
            project_ids = [project.id]
        else:
            project_ids = [p.id for p in visible_projects(session, ctx.caller.uid)
                           if may(Action.HOLD_LIST, caller_relation(session, ctx, p))]
        return [hold_view(row) for row in _holds_of(session, project_ids, args.open_only)]
