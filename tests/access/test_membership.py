"""Membership requests end to end through ``dispatch``: real users, real ACLs, real audit trail.

The gate is not running here (tests/access/test_gate.py and tests/e2e cover it): what these
tests prove is what the POSIX ACLs alone enforce after each request, and that every refusal
changes nothing and is audited.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import col, select

from agent.access.expiry import expire_memberships
from agent.api.dispatch import Caller, dispatch
from agent.clock import FakeClock
from agent.operations import OPERATIONS
from agent.services import Services
from agent.store import Member, Store
from agent.store.migrate import upgrade
from tests.api.inprocess import audit_events
from tests.support.services import build_services
from tests.support.users import TestUser, UserFactory

ROOT = Caller(uid=0, gid=0, pid=1, name="root")


def caller(user: TestUser) -> Caller:
    return Caller(uid=user.uid, gid=user.gid, pid=4242, name=user.name)


@dataclass
class Enclave:
    services: Services
    clock: FakeClock
    leader: TestUser
    project: str
    data: Path
    key: Path

    def call(self, who: Caller, op: str, **args: Any) -> dict[str, Any]:
        return dispatch({"op": op, "args": args}, who, self.services, OPERATIONS)

    def ok(self, who: Caller, op: str, **args: Any) -> Any:
        answer = self.call(who, op, **args)
        assert answer["ok"], answer
        return answer["result"]

    def refused(self, who: Caller, op: str, **args: Any) -> dict[str, Any]:
        before = self.members()
        answer = self.call(who, op, **args)
        assert not answer["ok"], answer
        assert self.members() == before  # a refusal changes nothing
        last = audit_events(self.services)[-1]
        assert last.action == op and last.outcome in {"refused", "failed"}
        return dict(answer["error"])

    def members(self) -> list[tuple[str, str, bool]]:
        with self.services.store.read() as session:
            rows = session.exec(select(Member).order_by(col(Member.id))).all()
            return [(m.user, m.role, m.revoked_at is None) for m in rows]


@pytest.fixture
def enclave(enclave_root: Path, unix_users: UserFactory, tmp_path: Path) -> Iterator[Enclave]:
    store = Store(f"sqlite:///{tmp_path / 'v.db'}")
    upgrade(store.engine)
    clock = FakeClock(datetime(2026, 11, 23, 12, 0, tzinfo=UTC))
    services = build_services(store, clock, enclave_root)
    leader = unix_users.create("vkl")
    answer = dispatch({"op": "project.create", "args": {
        "project": "p1234", "title": "Sleep and shift work", "leader": leader.name,
        "end_date": "2027-12-31"}}, ROOT, services, OPERATIONS)
    assert answer["ok"], answer
    zones = answer["result"]["zones"]
    yield Enclave(services, clock, leader, "p1234", Path(zones["data"]), Path(zones["key"]))
    store.close()


def as_user(user: TestUser, script: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["runuser", "-u", user.name, "--", "sh", "-c", script],
        capture_output=True, text=True, timeout=20, check=False)


def can_read(user: TestUser, path: Path) -> bool:
    return as_user(user, f"cat '{path}' >/dev/null").returncode == 0


def add(enclave: Enclave, who: Caller, user: TestUser, role: str = "member", **extra: Any) -> Any:
    return enclave.ok(who, "member.add", project=enclave.project, user=user.name, role=role,
                      reason="analyses sleep registers", **extra)


def test_a1_leader_adds_a_member_who_then_reads_and_writes_data(
    enclave: Enclave, unix_users: UserFactory
) -> None:
    alice = unix_users.create()
    (enclave.data / "cohort.csv").write_text("id,sleep\n1,7\n")
    result = add(enclave, caller(enclave.leader), alice)
    assert result["role"] == "member" and result["granted_by"] == enclave.leader.name
    assert can_read(alice, enclave.data / "cohort.csv")
    assert as_user(alice, f"echo 2,6 >> '{enclave.data / 'cohort.csv'}'").returncode == 0
    # files a member creates later are readable by the leader (default ACLs, any umask)
    assert as_user(alice, f"umask 077; echo x > '{enclave.data / 'notes.txt'}'").returncode == 0
    assert can_read(enclave.leader, enclave.data / "notes.txt")
    event = audit_events(enclave.services)[-1]
    assert (event.action, event.target, event.rule) == ("member.add", alice.name, "A4")
    assert json.loads(event.details)["reason"] == "analyses sleep registers"


def test_a1_outsiders_and_auditors_never_read_data(
    enclave: Enclave, unix_users: UserFactory
) -> None:
    outsider, auditor = unix_users.create(), unix_users.create()
    (enclave.data / "cohort.csv").write_text("x")
    add(enclave, ROOT, auditor, role="auditor")
    assert not can_read(outsider, enclave.data / "cohort.csv")
    assert not can_read(auditor, enclave.data / "cohort.csv")


def test_s6_member_cannot_be_key_custodian(enclave: Enclave, unix_users: UserFactory) -> None:
    alice = unix_users.create()
    add(enclave, ROOT, alice)
    error = enclave.refused(ROOT, "member.add", project=enclave.project, user=alice.name,
                            role="key_custodian", reason="holds the key")
    assert error["rule"] == "S6"
    error = enclave.refused(ROOT, "member.add", project=enclave.project,
                            user=enclave.leader.name, role="key_custodian", reason="key")
    assert error["rule"] == "S6"


def test_s6_key_custodian_reaches_the_key_zone_only(
    enclave: Enclave, unix_users: UserFactory
) -> None:
    keeper = unix_users.create()
    (enclave.key / "linkage.key").write_text("k")
    (enclave.data / "cohort.csv").write_text("d")
    add(enclave, caller(enclave.leader), keeper, role="key_custodian")
    assert can_read(keeper, enclave.key / "linkage.key")
    assert not can_read(keeper, enclave.data / "cohort.csv")
    assert not can_read(enclave.leader, enclave.key / "linkage.key")


@pytest.mark.parametrize(
    ("change", "error_type"),
    [
        ({"reason": "   "}, "InvalidRequest"),
        ({"role": "owner"}, "InvalidRequest"),
        ({"expires": "2026-11-22"}, "InvalidRequest"),
        ({"expires": "2026-02-30"}, "InvalidRequest"),
        ({"expires": "2028-01-01"}, "InvalidRequest"),
        ({"user": "nosuchuser"}, "NotFound"),
        ({"project": "p9999"}, "NotFound"),
    ],
    ids=["a4-no-reason", "unknown-role", "past-expiry", "impossible-date", "after-project-end",
         "unknown-user", "unknown-project"],
)
def test_bad_grants_get_one_clear_error_and_change_nothing(
    enclave: Enclave, unix_users: UserFactory, change: dict[str, Any], error_type: str
) -> None:
    alice = unix_users.create()
    args = {"project": enclave.project, "user": alice.name, "role": "member",
            "reason": "needs the data", **change}
    error = enclave.refused(ROOT, "member.add", **args)
    assert error["type"] == error_type
    assert "\n" not in error["message"]


def test_a2_only_root_appoints_auditors_and_auditors_review(
    enclave: Enclave, unix_users: UserFactory
) -> None:
    auditor, alice = unix_users.create(), unix_users.create()
    error = enclave.refused(caller(enclave.leader), "member.add", project=enclave.project,
                            user=auditor.name, role="auditor", reason="institution audit")
    assert (error["type"], error["rule"]) == ("PermissionDenied", "A2")
    add(enclave, ROOT, auditor, role="auditor")
    add(enclave, caller(enclave.leader), alice)
    enclave.ok(caller(enclave.leader), "member.remove", project=enclave.project,
               user=alice.name, reason="left the group")
    rows = enclave.ok(caller(auditor), "access.review", project=enclave.project)
    by_user = {(r["user"], r["role"]): r for r in rows}
    assert by_user[(alice.name, "member")]["status"] == "removed"
    assert by_user[(alice.name, "member")]["end_reason"] == "left the group"
    assert by_user[(alice.name, "member")]["granted_by"] == enclave.leader.name
    assert by_user[(enclave.leader.name, "leader")]["status"] == "active"
    assert by_user[(auditor.name, "auditor")]["granted_by"] == "root"
    # the auditor sees the review across the projects they audit, without naming one
    assert enclave.ok(caller(auditor), "access.review") == rows


def test_a1_members_list_members_but_cannot_add_or_review(
    enclave: Enclave, unix_users: UserFactory
) -> None:
    alice, bob = unix_users.create(), unix_users.create()
    add(enclave, ROOT, alice)
    listed = enclave.ok(caller(alice), "member.list", project=enclave.project)
    assert {(m["user"], m["role"]) for m in listed} == {
        (enclave.leader.name, "leader"), (alice.name, "member")}
    error = enclave.refused(caller(alice), "member.add", project=enclave.project,
                            user=bob.name, role="member", reason="friend")
    assert (error["type"], error["rule"]) == ("PermissionDenied", "A1")
    assert enclave.refused(caller(alice), "access.review",
                           project=enclave.project)["type"] == "PermissionDenied"


def test_outsiders_learn_nothing_not_even_that_the_project_exists(
    enclave: Enclave, unix_users: UserFactory
) -> None:
    outsider = unix_users.create()
    for op, args in [("member.list", {}), ("access.review", {}), ("access.check", {}),
                     ("member.add", {"user": outsider.name, "role": "member", "reason": "x"})]:
        real = enclave.refused(caller(outsider), op, project=enclave.project, **args)
        missing = enclave.refused(caller(outsider), op, project="p4321", **args)
        assert real["type"] == missing["type"] == "NotFound"
        assert real["message"].replace(enclave.project, "P") == missing["message"].replace(
            "p4321", "P")
    assert enclave.ok(caller(outsider), "access.review") == []


def test_a3_removal_ends_access_hands_files_over_and_ends_processes(
    enclave: Enclave, unix_users: UserFactory
) -> None:
    alice = unix_users.create()
    add(enclave, ROOT, alice)
    mine = enclave.data / "alice-notes.txt"
    assert as_user(alice, f"echo notes > '{mine}'").returncode == 0
    holder = subprocess.Popen(
        ["runuser", "-u", alice.name, "--", "sh", "-c",
         f"exec 3<'{mine}'; cd '{enclave.data}'; exec sleep 60"])
    try:
        _wait_for_holder(enclave, alice)
        result = enclave.ok(caller(enclave.leader), "member.remove", project=enclave.project,
                            user=alice.name, reason="moved to another institute")
        assert result["handed_over"] >= 1
        assert mine.stat().st_uid == enclave.leader.uid
        assert [p["pid"] for p in result["processes"]] and result["terminated"] == []
        assert not can_read(alice, mine)
        assert can_read(enclave.leader, mine)
        final = enclave.ok(ROOT, "member.add", project=enclave.project, user=alice.name,
                           role="member", reason="back for a week")
        assert final["role"] == "member"
        result = enclave.ok(ROOT, "member.remove", project=enclave.project, user=alice.name,
                            reason="done", terminate=True)
        assert result["terminated"]
        holder.wait(timeout=10)
    finally:
        holder.kill()
        holder.wait()
    actions = [e.action for e in audit_events(enclave.services)]
    assert actions.count("member.offboard") == 2


def _wait_for_holder(enclave: Enclave, user: TestUser) -> None:
    from agent.access.processes import find_holders

    deadline = datetime.now(UTC) + timedelta(seconds=10)
    while datetime.now(UTC) < deadline:
        if find_holders(user.uid, [str(enclave.data)]):
            return
    raise AssertionError("the member's process never opened the file")


def test_a1_expired_membership_ends_within_the_sweep(
    enclave: Enclave, unix_users: UserFactory
) -> None:
    alice = unix_users.create()
    (enclave.data / "cohort.csv").write_text("x")
    add(enclave, caller(enclave.leader), alice, expires="2026-11-23")
    vokterd = Caller(uid=0, gid=0, pid=1, name="vokterd")
    enclave.clock.set(datetime(2026, 11, 23, 23, 59, 59, tzinfo=UTC))
    assert expire_memberships(enclave.services, vokterd) == []
    assert can_read(alice, enclave.data / "cohort.csv")
    enclave.clock.set(datetime(2026, 11, 24, 0, 0, 30, tzinfo=UTC))
    ended = expire_memberships(enclave.services, vokterd)
    assert [e["user"] for e in ended] == [alice.name]
    assert not can_read(alice, enclave.data / "cohort.csv")
    assert expire_memberships(enclave.services, vokterd) == []  # once only
    row = next(r for r in enclave.ok(ROOT, "access.review", project=enclave.project)
               if r["user"] == alice.name)
    assert row["status"] == "expired" and row["ended_by"] == "vokterd"
    assert "member.expire" in [e.action for e in audit_events(enclave.services)]


def test_a1_access_check_repairs_drift_and_records_it(
    enclave: Enclave, unix_users: UserFactory
) -> None:
    alice, outsider = unix_users.create(), unix_users.create()
    add(enclave, ROOT, alice)
    target = enclave.data / "cohort.csv"
    target.write_text("x")
    subprocess.run(["chmod", "o+r", str(target)], check=True)
    subprocess.run(["setfacl", "-m", f"u:{outsider.name}:r", str(target)],
                   check=True)
    result = enclave.ok(caller(enclave.leader), "access.check", project=enclave.project)
    assert result["repaired"] >= 1
    assert any(d["path"] == str(target) for d in result["drift"])
    assert not can_read(outsider, target)
    assert can_read(alice, target)
    event = audit_events(enclave.services)[-1]
    assert (event.action, event.outcome, event.rule) == ("access.check", "violation", "A1")
    again = enclave.ok(ROOT, "access.check", project=enclave.project)
    assert again["repaired"] == 0
