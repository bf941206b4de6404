"""Registering copies through dispatch in the states a running daemon cannot yet reach in a
test of seconds (a closed project, L2): the real handler, a real SQLite store and the real
audit trail. The path people take, through vokterd and the CLI, is in
tests/e2e/test_holds_and_copies.py."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest
from sqlmodel import select

from agent.api.dispatch import Caller, dispatch
from agent.operations import OPERATIONS
from agent.services import Services
from agent.store.tables import Member, Project, RegisteredCopy
from tests.api.inprocess import audit_events

LEADER = Caller(uid=4242, gid=4242, pid=777, name="alice")
ROOT = Caller(uid=0, gid=0, pid=1, name="root")


def call(services: Services, caller: Caller, op: str, **args: Any) -> dict[str, Any]:
    return dispatch({"v": 1, "op": op, "args": args}, caller, services, OPERATIONS)


def add_project(services: Services, project_id: str, state: str) -> None:
    now = services.clock.now()
    with services.store.write() as session:
        session.add(Project(
            id=project_id, title="t", leader="alice", leader_uid=LEADER.uid,
            end_date=date(2026, 1, 1), state=state, data_root="/z/d", key_root="/z/k",
            export_root="/z/e", quarantine_root="/z/q", created_at=now, created_by="root"))
        session.flush()
        session.add(Member(project_id=project_id, user="alice", uid=LEADER.uid, role="leader",
                           granted_by="root", reason="leader", granted_at=now))


def copies(services: Services) -> list[str]:
    with services.store.read() as session:
        return [row.location for row in session.exec(select(RegisteredCopy)).all()]


@pytest.mark.parametrize("caller", [ROOT, LEADER], ids=["root", "leader"])
def test_l2_a_closed_project_registers_no_copy_and_the_refusal_is_audited(
    sqlite_services: Services, caller: Caller
) -> None:
    add_project(sqlite_services, "p1", "closed")
    answer = call(sqlite_services, caller, "copy.add", project="p1", location="tape T-9",
                  note="found in a drawer")
    assert answer["ok"] is False
    error = answer["error"]
    assert (error["type"], error["rule"]) == ("RuleViolation", "L2")
    assert error["message"].startswith("p1 is closed: every registered copy was confirmed")
    assert copies(sqlite_services) == []
    last = audit_events(sqlite_services)[-1]
    assert (last.action, last.outcome, last.rule, last.project_id, last.actor) == (
        "copy.add", "refused", "L2", "p1", caller.name)


def test_l2_a_copy_found_after_the_disposal_but_before_the_close_is_still_registered(
    sqlite_services: Services,
) -> None:
    add_project(sqlite_services, "p1", "deleted")
    answer = call(sqlite_services, LEADER, "copy.add", project="p1", location="tape T-9",
                  note="found in a drawer")
    assert answer["ok"] is True, answer
    assert answer["result"]["project_state"] == "deleted"
    assert copies(sqlite_services) == ["tape T-9"]
