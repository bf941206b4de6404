"""audit.verify through the daemon's seam (A5): root verifies the trail, a project's auditors
their project's chain and nothing else, everyone else is refused; the verification is itself
recorded, damaged or not. Real Unix users hold the roles; SQLite and PostgreSQL."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pytest

from agent.api.dispatch import Caller, dispatch
from agent.audit.seal import CHECKPOINT_FILE
from agent.operations import OPERATIONS
from agent.services import Services
from agent.store import AuditEvent
from tests.audit.chain_check import stored_events
from tests.audit.tamper import attacker, event, forged_after, insert, seal
from tests.support.users import TestUser, UserFactory

ROOT = Caller(uid=0, gid=0, pid=1, name="root")


def caller(user: TestUser) -> Caller:
    return Caller(uid=user.uid, gid=user.gid, pid=4711, name=user.name)


def call(services: Services, who: Caller, op: str, **args: Any) -> dict[str, Any]:
    return dispatch({"v": 1, "op": op, "args": args}, who, services, OPERATIONS)


def ok(response: dict[str, Any]) -> Any:
    assert response["ok"] is True, response
    return response["result"]


@dataclass
class People:
    leader: TestUser
    auditor: TestUser
    member: TestUser
    outsider: TestUser


@pytest.fixture
def people(services: Services, unix_users: UserFactory) -> People:
    made = People(*(unix_users.create("vka") for _ in range(4)))
    for project in ("p1001", "p1002"):
        ok(call(services, ROOT, "project.create", project=project, title="Sleep cohort",
                leader=made.leader.name, end_date="2030-06-30"))
    ok(call(services, ROOT, "member.add", project="p1001", user=made.auditor.name,
            role="auditor", reason="institution's auditor"))
    ok(call(services, caller(made.leader), "member.add", project="p1001",
            user=made.member.name, role="member", reason="analyses the cohort"))
    return made


def verify(services: Services, who: Caller, **args: Any) -> dict[str, Any]:
    return call(services, who, "audit.verify", **args)


def last_event(services: Services) -> AuditEvent:
    return stored_events(services.store)[-1]


def test_a5_root_verifies_the_whole_trail_and_the_verification_is_recorded(
    services: Services, people: People
) -> None:
    before = len(stored_events(services.store))
    result = ok(verify(services, ROOT))
    assert (result["ok"], result["scope"], result["count"]) == (True, "trail", before)
    assert result["damage"] is None
    recorded = last_event(services)
    assert (recorded.seq, recorded.action, recorded.outcome, recorded.project_id) == (
        before + 1, "audit.verify", "ok", None)
    assert json.loads(recorded.details)["count"] == before
    assert ok(verify(services, ROOT))["count"] == before + 1


def test_a5_an_auditor_verifies_their_projects_chain(services: Services, people: People) -> None:
    in_project = sum(1 for e in stored_events(services.store) if e.project_id == "p1001")
    result = ok(verify(services, caller(people.auditor), project="p1001"))
    assert (result["ok"], result["scope"], result["project"], result["count"]) == (
        True, "project", "p1001", in_project)
    recorded = last_event(services)
    assert (recorded.action, recorded.actor, recorded.project_id, recorded.project_seq) == (
        "audit.verify", people.auditor.name, "p1001", in_project + 1)


def test_a5_an_auditor_of_one_project_is_told_another_does_not_exist(
    services: Services, people: People
) -> None:
    response = verify(services, caller(people.auditor), project="p1002")
    assert response["error"]["type"] == "NotFound"
    assert "no project p1002" in response["error"]["message"]


@pytest.mark.parametrize("who", ["leader", "member"])
def test_a5_the_leader_and_members_may_not_verify_the_trail_that_records_them(
    services: Services, people: People, who: str
) -> None:
    response = verify(services, caller(getattr(people, who)), project="p1001")
    assert response["error"]["type"] == "PermissionDenied"
    assert "audit.read" in response["error"]["message"]
    refused = last_event(services)
    assert (refused.action, refused.outcome) == ("audit.verify", "refused")


def test_a5_an_outsider_is_told_the_project_does_not_exist(
    services: Services, people: People
) -> None:
    response = verify(services, caller(people.outsider), project="p1001")
    assert (response["error"]["type"], response["error"]["message"]) == (
        "NotFound", "no project p1001")


def test_a5_only_root_verifies_the_whole_trail(services: Services, people: People) -> None:
    response = verify(services, caller(people.auditor))
    assert response["error"]["type"] == "PermissionDenied"
    assert "--project" in response["error"]["hint"]


def test_a5_damage_is_reported_and_the_verification_recorded_after_it(
    services: Services, people: People
) -> None:
    with attacker(services.store) as hands:
        hands.run("DELETE FROM audit_event WHERE seq = 2")
    last = stored_events(services.store)[-1].seq
    result = ok(verify(services, ROOT))
    assert result["ok"] is False
    assert (result["damage"]["kind"], result["damage"]["seq"], result["count"]) == (
        "deleted", 2, 1)
    recorded = last_event(services)
    assert (recorded.seq, recorded.action, recorded.outcome, recorded.rule) == (
        last + 1, "audit.verify", "damaged", "A5")
    assert json.loads(recorded.details)["damage"]["kind"] == "deleted"


def test_a5_the_verification_is_recorded_even_if_the_head_cache_was_left_behind(
    services: Services, people: People
) -> None:
    """A forged event appended without moving the head cache would make the next event
    collide with it; the verification must still be written, after the forgery."""
    last = stored_events(services.store)[-1].seq
    with attacker(services.store) as hands:
        insert(hands, forged_after(hands, last))
    for _ in range(2):
        result = ok(verify(services, ROOT))
        assert (result["damage"]["kind"], result["damage"]["seq"]) == ("inserted", last + 1)
    events = stored_events(services.store)
    assert [(e.seq, e.action, e.outcome) for e in events[-2:]] == [
        (last + 2, "audit.verify", "damaged"), (last + 3, "audit.verify", "damaged")]
    assert "head_cache" in json.loads(events[-2].details)
    assert "head_cache" not in json.loads(events[-1].details)
    with attacker(services.store) as hands:
        assert event(hands, last + 2)["prev_hash"] == event(hands, last + 1)["hash"]


def test_a5_a_kept_checkpoint_is_held_against_the_chain(
    services: Services, people: People
) -> None:
    key_store = services.config.key_store
    sealed = seal(services.store, services.audit_keys, key_store, services.clock.now())
    kept = (key_store / "audit" / CHECKPOINT_FILE).read_text()
    result = ok(verify(services, caller(people.auditor), project="p1001", checkpoint=kept))
    assert result["ok"] is True
    assert result["kept"]["seq"] == result["sealed"]["seq"] == result["count"]
    assert result["sealed"]["trail_seq"] == sealed
    assert json.loads(last_event(services).details)["kept_checkpoint"]["seq"] == result["count"]


@pytest.mark.parametrize("text", ["not json", '{"payload": "{}", "signature": "AA=="}'])
def test_a5_a_checkpoint_that_is_not_one_is_refused(
    services: Services, people: People, text: str
) -> None:
    response = verify(services, ROOT, checkpoint=text)
    assert response["error"]["type"] == "InvalidRequest"
    assert response["error"]["message"].startswith("--checkpoint: ")


def test_a5_a_checkpoint_larger_than_any_is_refused_before_reading(
    services: Services, people: People
) -> None:
    response = verify(services, ROOT, checkpoint="x" * (512 * 1024 + 1))
    assert response["error"]["type"] == "InvalidRequest"
    assert "checkpoint" in response["error"]["message"]
