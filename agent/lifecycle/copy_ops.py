"""``copy.add``, ``copy.confirm`` and ``copy.list``: copies of a project's data kept outside the
enclave (L2).

The leader (or root) registers each copy handed out or written away, and later confirms it was
disposed of; the project is not closed until every one is (the decision reads them through
:mod:`agent.lifecycle.facts_io`). Auditors see the list; anyone else is told a copy they ask
for by number does not exist. Each change is audited in the transaction that makes it.
"""

from __future__ import annotations

from typing import Any

from sqlmodel import Session, col, select

from agent.access.permissions import Action, Relation, hides_existence
from agent.api.dispatch import RequestContext
from agent.api.schemas import CopyAddArgs, CopyConfirmArgs, ProjectRef
from agent.errors import NotFound, Refused
from agent.lifecycle.copies import (
    COPY_DISPOSED,
    COPY_REGISTERED,
    WHO_REGISTERS,
    WHO_SEES,
    check_confirmable,
    check_location,
    check_not_registered,
    check_note,
    check_registrable,
)
from agent.lifecycle.facts_io import copy_facts
from agent.lifecycle.holds import check_not_held, refusal
from agent.lifecycle.model import State
from agent.lifecycle.transitions import held
from agent.projects.service import caller_relation, project_for
from agent.store.tables import Project, RegisteredCopy

_DOING = {
    Action.COPY_ADD: "register a copy of its data",
    Action.COPY_CONFIRM: "confirm a copy of its data disposed of",
    Action.COPY_LIST: "see its registered copies",
}


def copy_view(row: RegisteredCopy) -> dict[str, Any]:
    confirmed = row.disposed_confirmed_at
    return {
        "id": row.id,
        "project": row.project_id,
        "location": row.location,
        "note": row.note,
        "status": "kept" if confirmed is None else "disposed",
        "registered_by": row.registered_by,
        "registered": row.registered_at.isoformat(),
        "disposed_confirmed_by": row.disposed_confirmed_by,
        "disposed_confirmed": confirmed.isoformat() if confirmed else None,
        "disposal_note": row.disposal_note,
    }


def _guard(action: Action, relation: Relation, project_id: str, copy_id: int | None = None
           ) -> None:
    refused: Refused | None = refusal(
        action, relation, project_id, rule="L2", doing=_DOING[action],
        who_may=WHO_SEES if action is Action.COPY_LIST else WHO_REGISTERS,
        record=None if copy_id is None else f"registered copy {copy_id}", see=Action.COPY_LIST,
        listing="'vokter copy list PROJECT'")
    if refused is not None:
        raise refused


def _copies_of(session: Session, project_id: str) -> list[RegisteredCopy]:
    return list(session.exec(select(RegisteredCopy).where(
        RegisteredCopy.project_id == project_id).order_by(col(RegisteredCopy.id))).all())


def add_copy(ctx: RequestContext, args: CopyAddArgs) -> dict[str, Any]:
    """Register a copy kept outside the enclave, in whatever state the project is short of
    closed: a copy found late still has to be disposed of."""
    with ctx.services.store.write() as session:
        project, relation = project_for(session, ctx, args.project, Action.PROJECT_SHOW)
        _guard(Action.COPY_ADD, relation, project.id)
        check_registrable(project.id, State(project.state))
        location = check_location(args.location)
        note = check_note(args.note, "the copy")
        check_not_registered([copy_facts(row) for row in _copies_of(session, project.id)],
                             location)
        row = RegisteredCopy(project_id=project.id, location=location, note=note,
                             registered_by=ctx.caller.name,
                             registered_at=ctx.services.clock.now())
        session.add(row)
        session.flush()
        ctx.audit(session, COPY_REGISTERED, project=project.id,
                  target=f"registered copy {row.id}", rule="L2",
                  details={"copy": row.id, "location": location, "note": note,
                           "state": project.state})
        return {**copy_view(row), "project_state": project.state}


def confirm_disposed(ctx: RequestContext, args: CopyConfirmArgs) -> dict[str, Any]:
    """Confirm, once, that a registered copy was disposed of, saying by whom and how."""
    with ctx.services.store.write() as session:
        row = session.get(RegisteredCopy, args.id)
        project = None if row is None else session.get(Project, row.project_id)
        if row is None or project is None:
            raise NotFound(f"no registered copy {args.id}",
                           hint="see 'vokter copy list PROJECT'")
        relation = caller_relation(session, ctx, project)
        if not hides_existence(relation):
            ctx.concerns(project.id, f"registered copy {row.id}")
        _guard(Action.COPY_CONFIRM, relation, project.id, row.id)
        check_confirmable(copy_facts(row))
        check_not_held(held(session, project.id), project.id,
                       f"confirming copy {row.id} disposed of")
        note = check_note(args.note, "its disposal")
        row.disposed_confirmed_by = ctx.caller.name
        row.disposed_confirmed_at = ctx.services.clock.now()
        row.disposal_note = note
        session.add(row)
        session.flush()
        ctx.audit(session, COPY_DISPOSED, project=project.id,
                  target=f"registered copy {row.id}", rule="L2",
                  details={"copy": row.id, "location": row.location,
                           "registered_by": row.registered_by, "note": note,
                           "state": project.state})
        return {**copy_view(row), "project_state": project.state}


def list_copies(ctx: RequestContext, args: ProjectRef) -> list[dict[str, Any]]:
    """The project's registered copies, oldest first, each kept or disposed of."""
    with ctx.services.store.read() as session:
        project, relation = project_for(session, ctx, args.project, Action.PROJECT_SHOW)
        _guard(Action.COPY_LIST, relation, project.id)
        return [copy_view(row) for row in _copies_of(session, project.id)]
