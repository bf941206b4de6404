"""``dispatch(message, caller, services, operations)``: the one seam, tested without a socket.

Every refusal and failure is audited; nothing a client sends makes dispatch raise.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from sqlalchemy.exc import DatabaseError

from agent.api.dispatch import Caller, Operation, RequestContext, dispatch
from agent.api.schemas import NoArgs, ProjectRef
from agent.errors import RuleViolation
from agent.operations import OPERATIONS
from agent.services import Services
from tests.api.inprocess import audit_events

ALICE = Caller(uid=4242, gid=4242, pid=777, name="alice")


def test_status_answers_with_the_kernel_given_caller(
    sqlite_services: Services, root_caller: Caller
) -> None:
    answer = dispatch({"v": 1, "op": "status", "args": {}}, ALICE, sqlite_services, OPERATIONS)
    assert answer["ok"] is True
    assert answer["result"]["caller"] == {"uid": 4242, "user": "alice"}
    assert "database" not in answer["result"]  # only root sees where the store is
    root = dispatch({"op": "status"}, root_caller, sqlite_services, OPERATIONS)
    assert root["result"]["caller"] == {"uid": 0, "user": "root"}
    json.dumps(answer)  # an answer is plain JSON


def test_unknown_operation_is_refused_and_audited(sqlite_services: Services) -> None:
    answer = dispatch({"v": 1, "op": "project.nuke", "args": {"project": "p1"}},
                      ALICE, sqlite_services, OPERATIONS)
    assert answer["ok"] is False
    error = answer["error"]
    assert error["type"] == "ProtocolError" and error["exit"] == 1
    assert "unknown operation 'project.nuke'" in error["message"]
    assert "status" in error["message"]  # the known operations are listed
    events = audit_events(sqlite_services)
    assert len(events) == 1
    event = events[0]
    assert (event.action, event.outcome, event.actor_uid, event.actor) == (
        "request", "refused", 4242, "alice")
    assert json.loads(event.details)["error"] == "ProtocolError"


@pytest.mark.parametrize("message", [["op", "status"], "status", None, {"args": {}}])
def test_malformed_messages_are_refused_and_audited(
    sqlite_services: Services, message: Any
) -> None:
    answer = dispatch(message, ALICE, sqlite_services, OPERATIONS)
    assert answer["ok"] is False and answer["error"]["type"] == "ProtocolError"
    assert [e.outcome for e in audit_events(sqlite_services)] == ["refused"]


def test_claimed_identity_in_args_is_refused_and_audited(sqlite_services: Services) -> None:
    answer = dispatch({"op": "status", "args": {"uid": 0}}, ALICE, sqlite_services, OPERATIONS)
    assert answer["ok"] is False
    assert answer["error"]["type"] == "InvalidRequest"
    assert answer["error"]["message"] == "uid: is not an accepted field"
    [event] = audit_events(sqlite_services)
    assert (event.action, event.outcome, event.actor_uid) == ("status", "refused", 4242)


def test_an_exception_in_a_handler_becomes_failed_and_is_audited(
    sqlite_services: Services,
) -> None:
    def explode(_ctx: RequestContext, _args: NoArgs) -> Any:
        raise RuntimeError("secret internal detail /etc/shadow")

    operations = {"explode": Operation(NoArgs, explode)}
    answer = dispatch({"op": "explode"}, ALICE, sqlite_services, operations)  # does not raise
    assert answer["ok"] is False
    error = answer["error"]
    assert error["type"] == "Failed" and error["exit"] == 1
    assert "internal error" in error["message"] and "nothing was changed" in error["message"]
    assert "secret" not in json.dumps(answer)  # internals stay in the daemon's log
    [event] = audit_events(sqlite_services)
    assert (event.action, event.outcome, event.actor) == ("explode", "failed", "alice")


def test_a_refusal_from_a_handler_carries_its_rule_and_is_audited_with_it(
    sqlite_services: Services,
) -> None:
    def refuse(_ctx: RequestContext, args: ProjectRef) -> Any:
        raise RuleViolation(f"{args.project} is under a legal hold", rule="L3")

    operations = {"project.dispose": Operation(ProjectRef, refuse)}
    answer = dispatch({"op": "project.dispose", "args": {"project": "p77"}},
                      ALICE, sqlite_services, operations)
    assert answer["error"]["type"] == "RuleViolation" and answer["error"]["rule"] == "L3"
    [event] = audit_events(sqlite_services)
    assert (event.action, event.outcome, event.rule, event.target) == (
        "project.dispose", "refused", "L3", "p77")


def test_a_handler_gets_the_caller_and_validated_args(sqlite_services: Services) -> None:
    seen: list[tuple[Caller, ProjectRef]] = []

    def record(ctx: RequestContext, args: ProjectRef) -> dict[str, str]:
        seen.append((ctx.caller, args))
        return {"project": args.project}

    operations = {"peek": Operation(ProjectRef, record)}
    answer = dispatch({"op": "peek", "args": {"project": "p5"}}, ALICE, sqlite_services,
                      operations)
    assert answer == {"ok": True, "result": {"project": "p5"}}
    assert seen == [(ALICE, ProjectRef(project="p5"))]


def test_handler_is_not_run_when_args_are_invalid(sqlite_services: Services) -> None:
    called: list[object] = []
    operations = {"peek": Operation(ProjectRef, lambda ctx, args: called.append(args))}
    answer = dispatch({"op": "peek", "args": {"project": "p5", "user": "root"}}, ALICE,
                      sqlite_services, operations)
    assert answer["ok"] is False and called == []


def test_dispatch_keeps_serving_when_the_audit_trail_cannot_be_written(
    sqlite_services: Services,
) -> None:
    sqlite_services.store.close()
    db = sqlite_services.store.url.removeprefix("sqlite:///")
    with open(db, "r+b") as broken:
        broken.write(b"this is no longer a database" * 100)
    answer = dispatch({"op": "nope"}, ALICE, sqlite_services, OPERATIONS)
    assert answer["ok"] is False and answer["error"]["type"] == "ProtocolError"
    with pytest.raises(DatabaseError):  # the store really is broken
        audit_events(sqlite_services)
