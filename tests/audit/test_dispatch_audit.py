"""Through the daemon's one seam, dispatch(): a change whose audit event cannot be written does
not happen (fail closed), and every refusal leaves an audit event (A5)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlmodel import select

from agent.api.dispatch import Caller, dispatch
from agent.operations import OPERATIONS
from agent.services import Services
from agent.store import AuditEvent, AuditHead, Member, Project, Store
from tests.audit.chain_check import assert_intact_chain, stored_events

PROJECT = "p1234"
ZONES = ("data", "key", "export", "quarantine")
SOMEONE = Caller(uid=4242, gid=4242, pid=777, name="someone")


def create_request(**overrides: Any) -> dict[str, Any]:
    args = {"project": PROJECT, "title": "Sleep cohort", "leader": "root",
            "end_date": "2030-06-30", **overrides}
    return {"v": 1, "op": "project.create", "args": args}


def refuse_audit_inserts(store: Store) -> None:
    """Make the audit table refuse every insert, as a full disk or a broken trail would."""
    with store.engine.begin() as connection:
        if store.backend == "sqlite":
            connection.execute(text(
                "CREATE TRIGGER audit_down BEFORE INSERT ON audit_event "
                "BEGIN SELECT RAISE(ABORT, 'audit down'); END;"
            ))
        else:
            connection.execute(text(
                "CREATE FUNCTION audit_down() RETURNS trigger LANGUAGE plpgsql AS "
                "$$ BEGIN RAISE EXCEPTION 'audit down'; END $$"
            ))
            connection.execute(text(
                "CREATE TRIGGER audit_down BEFORE INSERT ON audit_event "
                "FOR EACH ROW EXECUTE FUNCTION audit_down()"
            ))


def project_dir(services: Services) -> Path:
    return Path(services.config.zones_dir) / PROJECT


def rows(store: Store, table: type) -> list[Any]:
    with store.read() as session:
        return list(session.exec(select(table)).all())


# --- fail closed --------------------------------------------------------------------------------


def test_a5_project_create_does_not_happen_when_its_audit_event_cannot_be_written(
    services: Services, root_caller: Caller
) -> None:
    refuse_audit_inserts(services.store)

    response = dispatch(create_request(), root_caller, services, OPERATIONS)

    assert response["ok"] is False
    assert response["error"]["type"] == "AuditUnavailable"
    assert rows(services.store, Project) == []
    assert rows(services.store, Member) == []
    assert rows(services.store, AuditEvent) == []
    for zone in ZONES:
        assert not (project_dir(services) / zone).exists(), zone
    assert not project_dir(services).exists()


def test_a5_project_create_with_a_working_trail_creates_and_audits_once(
    services: Services, root_caller: Caller
) -> None:
    """The control for the test above: the same request, trail intact, succeeds."""
    response = dispatch(create_request(), root_caller, services, OPERATIONS)

    assert response["ok"] is True, response
    assert response["result"]["project"] == PROJECT
    assert [p.id for p in rows(services.store, Project)] == [PROJECT]
    assert [(m.user, m.role) for m in rows(services.store, Member)] == [("root", "leader")]
    for zone in ZONES:
        assert (project_dir(services) / zone).is_dir(), zone
    events = stored_events(services.store)
    created = [e for e in events if e.action == "project.create"]
    assert [(e.outcome, e.project_id, e.actor_uid, e.actor) for e in created] == [
        ("ok", PROJECT, 0, "root")
    ]
    assert created[0].time == services.clock.now()
    assert_intact_chain(events)


def test_a5_the_trail_going_down_after_a_success_stops_the_next_change(
    services: Services, root_caller: Caller
) -> None:
    assert dispatch(create_request(), root_caller, services, OPERATIONS)["ok"] is True
    refuse_audit_inserts(services.store)

    response = dispatch(create_request(project="p5678"), root_caller, services, OPERATIONS)

    assert response["error"]["type"] == "AuditUnavailable"
    assert [p.id for p in rows(services.store, Project)] == [PROJECT]
    assert not (Path(services.config.zones_dir) / "p5678").exists()
    assert len(stored_events(services.store)) == 1


# --- refusals are audited -----------------------------------------------------------------------


def refused_events(store: Store) -> list[AuditEvent]:
    return [e for e in stored_events(store) if e.outcome == "refused"]


def test_a5_project_create_by_a_non_root_caller_is_refused_and_audited(
    services: Services,
) -> None:
    response = dispatch(create_request(), SOMEONE, services, OPERATIONS)

    assert response["ok"] is False
    assert response["error"]["type"] == "PermissionDenied"
    [event] = stored_events(services.store)
    assert (event.outcome, event.actor_uid, event.actor, event.action) == (
        "refused", 4242, "someone", "project.create"
    )
    # the project does not exist (yet): it is named, but gets no chain of its own
    assert (event.project_id, event.target) == (None, PROJECT)
    assert '"error":"PermissionDenied"' in event.details
    assert '"pid":777' in event.details
    assert rows(services.store, Project) == []
    assert not project_dir(services).exists()


def test_a5_an_unknown_operation_is_refused_and_audited(
    services: Services, root_caller: Caller
) -> None:
    response = dispatch({"v": 1, "op": "project.explode", "args": {}}, SOMEONE, services,
                        OPERATIONS)

    assert response["ok"] is False
    assert response["error"]["type"] == "ProtocolError"
    [event] = refused_events(services.store)
    assert (event.actor_uid, event.action) == (4242, "request")
    assert '"error":"ProtocolError"' in event.details


def test_a5_a_claimed_uid_in_the_arguments_is_refused_and_audited(
    services: Services,
) -> None:
    response = dispatch(create_request(uid=0), SOMEONE, services, OPERATIONS)

    assert response["ok"] is False
    assert response["error"]["type"] == "InvalidRequest"
    assert "uid" in response["error"]["message"]
    [event] = refused_events(services.store)
    assert (event.actor_uid, event.action, event.target) == (4242, "project.create", PROJECT)
    assert '"error":"InvalidRequest"' in event.details
    assert rows(services.store, Project) == []


@pytest.mark.parametrize(
    "message",
    [
        pytest.param(["not", "an", "object"], id="not-an-object"),
        pytest.param({"v": 99, "op": "status", "args": {}}, id="wrong-protocol-version"),
        pytest.param({"v": 1, "op": "status", "args": {}, "user": "root"}, id="extra-field"),
        pytest.param({"v": 1}, id="no-op"),
    ],
)
def test_a5_a_malformed_request_is_refused_and_audited(
    services: Services, message: Any
) -> None:
    response = dispatch(message, SOMEONE, services, OPERATIONS)

    assert response["ok"] is False
    assert response["error"]["type"] == "ProtocolError"
    [event] = refused_events(services.store)
    assert (event.actor_uid, event.actor, event.action) == (4242, "someone", "request")


def test_a5_refusals_and_successes_share_one_linked_chain(
    services: Services, root_caller: Caller
) -> None:
    dispatch(create_request(), SOMEONE, services, OPERATIONS)
    dispatch(create_request(), root_caller, services, OPERATIONS)
    dispatch(create_request(), root_caller, services, OPERATIONS)  # already exists
    dispatch({"v": 1, "op": "nope"}, root_caller, services, OPERATIONS)

    events = stored_events(services.store)
    assert [(e.action, e.outcome) for e in events] == [
        ("project.create", "refused"),
        ("project.create", "ok"),
        ("project.create", "refused"),
        ("request", "refused"),
    ]
    assert '"error":"AlreadyExists"' in events[2].details
    assert_intact_chain(events)


def test_a5_a_refusal_about_a_missing_project_names_it_but_starts_no_project_chain(
    services: Services,
) -> None:
    outsider = Caller(uid=4242, gid=4242, pid=7, name="someone")
    answer = dispatch({"v": 1, "op": "project.show", "args": {"project": "p777"}}, outsider,
                      services, OPERATIONS)
    assert answer["ok"] is False
    [refusal] = [e for e in stored_events(services.store) if e.action == "project.show"]
    assert (refusal.project_id, refusal.project_seq, refusal.target) == (None, None, "p777")
    with services.store.read() as session:
        assert session.get(AuditHead, "p777") is None
