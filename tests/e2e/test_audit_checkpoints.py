"""Signed checkpoints as an operator and an auditor meet them (A5): a real vokterd seals its trail
after N events and at shutdown, the key `vokter audit pubkey` prints verifies what it signed,
and a trail attacked while the daemon was down is reported at the next start, without the
daemon ceasing to enforce."""

from __future__ import annotations

import base64
import json
import re
import shutil
import sqlite3
import time
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from agent.policy import default_policy_path
from tests.support.daemon import RunningDaemon
from tests.support.users import UserFactory

END = "2030-06-30"
DEADLINE = 30.0


def policy_dir(root: Path, *, seconds: int, events: int) -> str:
    """A policies_dir whose default policy seals every ``events`` events or ``seconds``."""
    policies = root / "policies"
    policies.mkdir()
    text = default_policy_path().read_text()
    text = re.sub(r"(?m)^checkpoint_seconds = \d+", f"checkpoint_seconds = {seconds}", text)
    text = re.sub(r"(?m)^checkpoint_events = \d+", f"checkpoint_events = {events}", text)
    (policies / "default.toml").write_text(text)
    return f'policies_dir = "{policies}"\n'


def checkpoints(daemon: RunningDaemon) -> list[dict[str, Any]]:
    with sqlite3.connect(f"file:{daemon.state_dir / 'vokter.db'}?mode=ro", uri=True) as db:
        db.row_factory = sqlite3.Row
        return [dict(r) for r in db.execute("SELECT * FROM audit_checkpoint ORDER BY id")]


def tamper(daemon: RunningDaemon, *statements: str) -> None:
    with sqlite3.connect(daemon.state_dir / "vokter.db") as db:
        for statement in statements:
            db.execute(statement)


def kept(daemon: RunningDaemon) -> dict[str, str]:
    return dict(json.loads((daemon.key_store / "audit" / "checkpoint.json").read_text()))


def signed_by(pem: str, payload: str, signature: str) -> bool:
    key = load_pem_public_key(pem.encode())
    assert isinstance(key, Ed25519PublicKey)
    try:
        key.verify(base64.b64decode(signature), payload.encode())
    except Exception:
        return False
    return True


def create(daemon: RunningDaemon, project: str, leader: str = "root") -> None:
    result = daemon.vokter("project", "create", project, "--title", f"Study {project}",
                           "--leader", leader, "--end-date", END)
    assert result.returncode == 0, result.stderr


def test_a5_checkpoints_come_every_n_events_and_the_last_covers_daemon_stop(
    enclave_root: Path,
) -> None:
    daemon = RunningDaemon(enclave_root, policy_dir(enclave_root, seconds=3600, events=3))
    daemon.start()
    try:
        for project in ("p1", "p2", "p3"):
            create(daemon, project)
        deadline = time.monotonic() + DEADLINE
        while not any(c["seq"] >= 3 for c in checkpoints(daemon)):  # not the hourly one
            assert time.monotonic() < deadline, "no checkpoint after 3 events"
            time.sleep(0.05)
        pem = daemon.vokter("audit", "pubkey").stdout
    finally:
        assert daemon.stop() == 0
    events = daemon.audit_events()
    made = checkpoints(daemon)
    assert [c["seq"] for c in made] == sorted({c["seq"] for c in made})
    assert all(signed_by(pem, c["payload"], c["signature"]) for c in made)
    last = json.loads(made[-1]["payload"])
    assert events[-1]["action"] == "daemon.stop"
    assert (last["seq"], last["head"]) == (events[-1]["seq"], events[-1]["hash"])
    assert set(last["projects"]) == {"p1", "p2", "p3"}
    assert kept(daemon) == {"payload": made[-1]["payload"], "signature": made[-1]["signature"]}


def test_a5_an_auditor_keeps_a_checkpoint_an_outsider_gets_none(
    daemon: RunningDaemon, unix_users: UserFactory
) -> None:
    leader, auditor, outsider = unix_users.create(), unix_users.create(), unix_users.create()
    create(daemon, "p1", leader.name)
    appointed = daemon.vokter("member", "add", "p1", auditor.name, "--role", "auditor",
                              "--reason", "institution's audit")
    assert appointed.returncode == 0, appointed.stderr
    pem = daemon.vokter("audit", "pubkey", user=outsider.name)
    assert pem.returncode == 0 and "BEGIN PUBLIC KEY" in pem.stdout
    got = daemon.vokter("audit", "checkpoint", user=auditor.name)
    assert got.returncode == 0, got.stderr
    document = json.loads(got.stdout)
    assert signed_by(pem.stdout, document["payload"], document["signature"])
    covered = json.loads(document["payload"])["seq"]
    assert covered >= max(e["seq"] for e in daemon.audit_events()
                          if e["action"] == "member.add")
    for someone in (leader, outsider):  # the leader is audited, not an auditor
        refused = daemon.vokter("audit", "checkpoint", user=someone.name)
        assert refused.returncode == 1 and refused.stdout == ""
        assert "only root and the auditors" in refused.stderr


def test_a5_a_tail_cut_while_stopped_is_reported_at_start_and_enforcement_goes_on(
    enclave_root: Path,
) -> None:
    daemon = RunningDaemon(enclave_root)
    daemon.start()
    create(daemon, "p1")
    create(daemon, "p2")
    daemon.stop()
    events = daemon.audit_events()
    cut_to = next(e["seq"] for e in events if e["action"] == "project.create") - 1
    # A thorough attacker: the events, their checkpoints and the head cache, all cut back.
    tamper(daemon, f"DELETE FROM audit_event WHERE seq > {cut_to}",  # noqa: S608
           "DELETE FROM audit_checkpoint",
           f"UPDATE audit_head SET seq = {cut_to}, hash = (SELECT hash FROM audit_event "  # noqa: S608
           f"WHERE seq = {cut_to}) WHERE chain = ''",
           "DELETE FROM audit_head WHERE chain <> ''")
    daemon.start()
    try:
        found = [e for e in daemon.audit_events() if e["action"] == "audit.damage_detected"]
        assert found, "the cut tail was not recorded at start"
        details = json.loads(found[0]["details"])
        assert (details["kind"], details["found"], found[0]["outcome"], found[0]["rule"]) == (
            "tail_cut", "start", "violation", "A5")
        errors = [r for r in daemon.log_records() if r.get("event") == "audit_trail_damaged"]
        assert errors and errors[0]["level"] == "error" and "cut off" in errors[0]["what"]
        create(daemon, "p3")  # enforcement goes on
        status = daemon.vokter("status")
        assert status.returncode == 0 and "sealing:" in status.stdout
        assert "STOPPED: tail_cut" in status.stdout or "STOPPED: changed" in status.stdout
        stale = daemon.vokter("audit", "checkpoint", "--summary")
        assert stale.returncode == 1 and stale.stdout.startswith(
            f"checkpoint {events[-1]['seq']} at ")  # the last good one, from the key store
        assert "vokter: the trail is damaged" in stale.stderr
        accepted = daemon.vokter("audit", "checkpoint", "--accept-damage",
                                 "tail cut in an incident drill; evidence kept")
        assert accepted.returncode == 0, accepted.stderr
        assert "accepted" in accepted.stderr
        assert "sealing:" not in daemon.vokter("status").stdout
    finally:
        daemon.stop()
    after = daemon.audit_events()
    assert any(e["action"] == "audit.damage_accepted" for e in after)
    newest = json.loads(checkpoints(daemon)[-1]["payload"])
    assert after[-1]["action"] == "daemon.stop" and newest["seq"] == after[-1]["seq"]
    evidence = list((daemon.key_store / "audit").glob("checkpoint-replaced-*.json"))
    assert len(evidence) == 1
    assert json.loads(json.loads(evidence[0].read_text())["payload"])["seq"] == events[-1]["seq"]


def test_a5_a_replaced_key_store_checkpoint_is_refused_and_nothing_is_signed_over_it(
    enclave_root: Path,
) -> None:
    daemon = RunningDaemon(enclave_root)
    daemon.start()
    create(daemon, "p1")
    daemon.stop()
    path = daemon.key_store / "audit" / "checkpoint.json"
    document = json.loads(path.read_text())
    sealed_seq = json.loads(document["payload"])["seq"]
    document["payload"] = document["payload"].replace(f'"seq":{sealed_seq}', '"seq":1')
    path.write_text(json.dumps(document))
    shutil.copy(path, enclave_root / "replaced.json")
    before = len(checkpoints(daemon))
    daemon.start()
    try:
        create(daemon, "p2")
    finally:
        daemon.stop()  # the final seal too finds the refused checkpoint
    [found] = [e for e in daemon.audit_events() if e["action"] == "audit.damage_detected"]
    assert json.loads(found["details"])["kind"] == "checkpoint_refused"
    assert len(checkpoints(daemon)) == before
    assert path.read_bytes() == (enclave_root / "replaced.json").read_bytes()  # evidence kept
