"""The key operations through dispatch (S3, S5): root alone shreds, sees and rotates keys; each
shred and rotation is audited in its own transaction, with ids and dates but no key bytes."""

from __future__ import annotations

import base64
import json
from datetime import date
from typing import Any

import pytest

from agent.access.permissions import Action, Relation, may
from agent.api.dispatch import Caller, dispatch
from agent.crypto.master import MASTER_KEY_FILE, read_master_key_file
from agent.operations import OPERATIONS
from agent.services import Services
from agent.store.tables import Member, Project
from tests.api.inprocess import audit_events

LEADER = Caller(uid=4242, gid=4242, pid=777, name="alice")
ROOT = Caller(uid=0, gid=0, pid=1, name="root")


def call(services: Services, caller: Caller, op: str, **args: Any) -> dict[str, Any]:
    return dispatch({"v": 1, "op": op, "args": args}, caller, services, OPERATIONS)


def add_project(services: Services, project_id: str) -> None:
    now = services.clock.now()
    with services.store.write() as session:
        session.add(Project(
            id=project_id, title="t", leader="alice", leader_uid=LEADER.uid,
            end_date=date(2030, 1, 1), data_root="/z/d", key_root="/z/k", export_root="/z/e",
            quarantine_root="/z/q", created_at=now, created_by="root"))
        session.flush()
        session.add(Member(project_id=project_id, user="alice", uid=LEADER.uid, role="leader",
                           granted_by="root", reason="leader", granted_at=now))
        services.key_store.create(session, project_id, now)


@pytest.mark.parametrize("action", [Action.KEY_SHRED, Action.KEY_ADMIN])
def test_s3_s5_only_root_shreds_sees_and_rotates_keys(action: Action) -> None:
    assert [r for r in Relation if may(action, r)] == [Relation.ROOT]


def test_s3_shred_key_is_root_only_confirmed_and_audited(sqlite_services: Services) -> None:
    services = sqlite_services
    add_project(services, "p1")
    refused = call(services, LEADER, "project.shred_key", project="p1", confirm="p1")
    assert refused["ok"] is False and refused["error"]["type"] == "PermissionDenied"
    unconfirmed = call(services, ROOT, "project.shred_key", project="p1", confirm="p2")
    assert unconfirmed["error"]["type"] == "InvalidRequest"
    services.key_store.keyset("p1")  # both refusals left the key alone

    done = call(services, ROOT, "project.shred_key", project="p1", confirm="p1")
    assert done["ok"] is True, done
    assert done["result"]["purged"] is True and done["result"]["destroyed_by"] == "root"
    events = [e for e in audit_events(services) if e.action == "project.key_shredded"]
    assert [(e.outcome, e.rule, e.project_id, e.actor) for e in events] == [
        ("ok", "S3", "p1", "root")]
    again = call(services, ROOT, "project.shred_key", project="p1", confirm="p1")
    assert again["error"]["type"] == "Refused"
    assert "already destroyed on 2026-11-23 by root" in again["error"]["message"]


def test_s5_keys_status_and_rotation_are_root_only_and_audited(
    sqlite_services: Services,
) -> None:
    services = sqlite_services
    add_project(services, "p1")
    add_project(services, "p2")
    call(services, ROOT, "project.shred_key", project="p2", confirm="p2")
    for op in ("keys.status", "keys.rotate_master"):
        assert call(services, LEADER, op)["error"]["type"] == "PermissionDenied"
    status = call(services, ROOT, "keys.status")["result"]
    assert (status["keysets_live"], status["keysets_destroyed"]) == (1, 1)
    assert status["source"] == "key store" and status["last_rotated"] is None
    old_master = read_master_key_file(services.config.key_store / MASTER_KEY_FILE)

    rotated = call(services, ROOT, "keys.rotate_master")["result"]
    assert rotated["rewrapped"] == 1 and rotated["old_master_key_id"] == old_master.key_id
    status = call(services, ROOT, "keys.status")["result"]
    assert status["master_key_id"] == rotated["master_key_id"]
    assert status["last_rotated"] == services.clock.now().isoformat()
    events = [e for e in audit_events(services) if e.action == "keys.master_rotated"]
    assert [(e.outcome, e.rule) for e in events] == [("ok", "S5")]
    assert json.loads(events[0].details)["master_key_id"] == rotated["master_key_id"]

    new_master = read_master_key_file(services.config.key_store / MASTER_KEY_FILE)
    keyset = services.key_store.keyset("p1")
    trail = " ".join(e.details + (e.target or "") for e in audit_events(services))
    for secret in (old_master.material, new_master.material, keyset.primary.key_value):
        assert secret.hex() not in trail
        assert base64.b64encode(secret).decode() not in trail
