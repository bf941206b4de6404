"""Fail closed (A5) on PostgreSQL: the database refuses the daemon's INSERTs into the trail (its
privilege revoked, as a DBA's mistake or a full tablespace would), so a member added through the
daemon's seam is refused and nothing changes: not the access list, not the zone's ACLs.
(tests/audit/test_dispatch_audit.py covers project.create with a trigger; tests/e2e covers
member add against a real vokterd on SQLite.)"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlmodel import select

from agent.api.dispatch import Caller, dispatch
from agent.clock import FakeClock
from agent.operations import OPERATIONS
from agent.services import Services
from agent.store import Member, Store
from agent.store.migrate import upgrade
from tests.support.services import build_services
from tests.support.users import UserFactory

ROOT = Caller(uid=0, gid=0, pid=1, name="root")


@pytest.fixture
def pg_services(pg_url: str, fake_clock: FakeClock, tmp_path: Path) -> Iterator[Services]:
    store = Store(pg_url)
    upgrade(store.engine)
    yield build_services(store, fake_clock, tmp_path)
    store.close()


def acl(path: Path) -> str:
    return subprocess.run(["getfacl", "--omit-header", "--numeric", str(path)],
                          capture_output=True, text=True, check=True).stdout


def grants(services: Services) -> list[tuple[str, str]]:
    with services.store.read() as session:
        return [(m.user, m.role) for m in session.exec(select(Member)).all()]


@pytest.mark.postgres
def test_a5_member_add_is_refused_and_changes_nothing_when_insert_into_the_trail_is_revoked(
    pg_services: Services, unix_users: UserFactory
) -> None:
    leader, alice = unix_users.create("vkp"), unix_users.create("vkp")
    created = dispatch({"v": 1, "op": "project.create", "args": {
        "project": "p1", "title": "Cohort", "leader": leader.name, "end_date": "2030-06-30"}},
        ROOT, pg_services, OPERATIONS)
    assert created["ok"] is True, created
    data = Path(created["result"]["zones"]["data"])
    acl_before, grants_before = acl(data), grants(pg_services)
    with pg_services.store.engine.begin() as connection:
        connection.execute(text("REVOKE INSERT ON audit_event FROM CURRENT_USER"))

    response = dispatch({"v": 1, "op": "member.add", "args": {
        "project": "p1", "user": alice.name, "role": "member", "reason": "analyses it"}},
        Caller(uid=leader.uid, gid=leader.gid, pid=2, name=leader.name), pg_services,
        OPERATIONS)

    assert response["ok"] is False
    assert response["error"]["type"] == "AuditUnavailable"
    assert grants(pg_services) == grants_before == [(leader.name, "leader")]
    assert acl(data) == acl_before and f"user:{alice.uid}:" not in acl_before
