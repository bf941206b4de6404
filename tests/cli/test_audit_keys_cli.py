"""vokter audit pubkey / checkpoint (A5) against an in-process daemon with the real handlers:
the key an auditor keeps verifies the checkpoint they keep, with nothing but cryptography."""

from __future__ import annotations

import base64
import io
import json
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
import structlog
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from sqlalchemy import text

from agent.api.dispatch import Caller, RequestContext
from agent.api.server import SocketServer
from agent.daemon import configure_logging
from agent.services import Services
from agent.store import Member, Project
from cli.main import main
from tests.api.inprocess import audit_events
from tests.support.users import UserFactory

VOKTER = Path(sys.executable).parent / "vokter"


@pytest.fixture(autouse=True)
def daemon_log() -> Iterator[io.StringIO]:
    """The in-process daemon logs as vokterd does, but apart from what the CLI prints."""
    saved = structlog.get_config()
    buffer = io.StringIO()
    configure_logging(stream=buffer)
    yield buffer
    structlog.configure(**saved)


def run(capsys: pytest.CaptureFixture[str], server: SocketServer, *argv: str
        ) -> tuple[int, str, str]:
    code = main(["--socket", str(server.path), *argv])
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return code, out, err


def run_as(user: str, server: SocketServer, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["runuser", "-u", user, "--", str(VOKTER), "--socket",
                           str(server.path), *argv], capture_output=True, text=True, timeout=60)


def record(services: Services, count: int) -> None:
    caller = Caller(uid=0, gid=0, pid=1, name="root")
    for _ in range(count):
        with services.store.write() as session:
            RequestContext(caller, services).audit(session, "test.event", project="p1")


def verifies(pem: str, document: dict[str, Any]) -> bool:
    key = load_pem_public_key(pem.encode())
    assert isinstance(key, Ed25519PublicKey)
    try:
        key.verify(base64.b64decode(document["signature"]), document["payload"].encode())
    except Exception:
        return False
    return True


def add_project_with_auditor(services: Services, auditor_uid: int, auditor: str,
                             expires: date | None = None) -> None:
    moment = datetime(2026, 11, 1, tzinfo=UTC)
    with services.store.write() as session:
        session.add(Project(id="p1", title="Study", leader="root", leader_uid=0,
                            end_date=date(2030, 1, 1), data_root="/nonexistent/d",
                            key_root="/nonexistent/k", export_root="/nonexistent/e",
                            quarantine_root="/nonexistent/q", created_at=moment,
                            created_by="root"))
        session.flush()
        session.add(Member(project_id="p1", user=auditor, uid=auditor_uid, role="auditor",
                           granted_by="root", reason="appointed", granted_at=moment,
                           expires_at=expires))


@pytest.mark.parametrize("command", ["pubkey", "checkpoint"])
def test_both_commands_have_help_with_examples(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["audit", command, "--help"])
    out, err = capsys.readouterr()
    assert code == 0 and err == ""
    assert "Examples:" in out and f"vokter audit {command}" in out


def test_a5_pubkey_prints_the_pem_the_daemon_signs_with(
    server: SocketServer, sqlite_services: Services, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, server, "audit", "pubkey")
    assert code == 0 and err == ""
    assert out == sqlite_services.audit_keys.public_pem
    assert out.startswith("-----BEGIN PUBLIC KEY-----\n") and out.endswith("-----\n")
    code, out, _ = run(capsys, server, "audit", "pubkey", "--json")
    assert code == 0
    assert json.loads(out) == {"key_id": sqlite_services.audit_keys.key_id,
                               "pem": sqlite_services.audit_keys.public_pem}


def test_a5_checkpoint_covers_the_trail_and_verifies_with_the_printed_key(
    server: SocketServer, sqlite_services: Services, capsys: pytest.CaptureFixture[str]
) -> None:
    record(sqlite_services, 3)
    _, pem, _ = run(capsys, server, "audit", "pubkey")
    code, out, err = run(capsys, server, "audit", "checkpoint")
    assert code == 0, err
    document = json.loads(out)
    assert set(document) == {"payload", "signature"}
    assert verifies(pem, document)
    payload = json.loads(document["payload"])
    last = audit_events(sqlite_services)[-1]
    assert (payload["seq"], payload["head"]) == (last.seq, last.hash)
    assert payload["projects"]["p1"]["seq"] == 3
    forged = {**document, "payload": document["payload"].replace('"seq":3', '"seq":2')}
    assert not verifies(pem, forged)


def test_a5_checkpoint_summary_is_one_line_for_people(
    server: SocketServer, sqlite_services: Services, capsys: pytest.CaptureFixture[str]
) -> None:
    record(sqlite_services, 2)
    code, out, err = run(capsys, server, "audit", "checkpoint", "--summary")
    assert code == 0, err
    key_id = sqlite_services.audit_keys.key_id
    assert out == f"checkpoint 2 at 2026-11-23 12:00:00 UTC, 1 project, key {key_id}\n"


def test_a5_a_damaged_trail_prints_the_last_good_checkpoint_and_fails(
    server: SocketServer, sqlite_services: Services, capsys: pytest.CaptureFixture[str]
) -> None:
    record(sqlite_services, 2)
    assert run(capsys, server, "audit", "checkpoint")[0] == 0
    record(sqlite_services, 2)
    with sqlite_services.store.engine.begin() as connection:
        connection.execute(text("UPDATE audit_event SET target = 'x' WHERE seq = 4"))
    code, out, err = run(capsys, server, "audit", "checkpoint")
    assert code == 1
    assert json.loads(json.loads(out)["payload"])["seq"] == 2
    [line] = err.splitlines()
    assert line.startswith("vokter: the trail is damaged (changed at event 4)")
    assert "last good checkpoint (2)" in line and "vokter audit verify" in line

    code, out, err = run(capsys, server, "audit", "checkpoint",
                         "--accept-damage", "event 4 edited by hand during an incident test")
    assert code == 0, err
    assert err == "accepted changed damage at event 4; sealing goes on from checkpoint 6\n"
    accepted = [e for e in audit_events(sqlite_services) if e.action == "audit.damage_accepted"]
    assert len(accepted) == 1 and accepted[0].actor == "root"
    assert json.loads(accepted[0].details)["reason"].startswith("event 4 edited")
    record(sqlite_services, 1)
    code, out, err = run(capsys, server, "audit", "checkpoint", "--summary")
    assert code == 0 and err == ""
    assert out.startswith("checkpoint 7 at ")


def test_a5_accepting_damage_when_there_is_none_changes_nothing(
    server: SocketServer, sqlite_services: Services, capsys: pytest.CaptureFixture[str]
) -> None:
    record(sqlite_services, 1)
    code, out, err = run(capsys, server, "audit", "checkpoint", "--accept-damage", "why not")
    assert code == 1 and out == ""
    assert "no damage to accept" in err
    assert not any(e.action == "audit.damage_accepted" for e in audit_events(sqlite_services))


def test_a5_status_names_the_last_checkpoint_and_the_key(
    server: SocketServer, sqlite_services: Services, capsys: pytest.CaptureFixture[str]
) -> None:
    record(sqlite_services, 2)
    run(capsys, server, "audit", "checkpoint")
    code, out, err = run(capsys, server, "status")
    assert code == 0, err
    assert "checkpoint: seq 2 at 2026-11-23T12:00:00.000000Z (00:00:00 ago)" in out
    assert f"audit key: {sqlite_services.audit_keys.key_id}" in out
    assert "sealing" not in out
    info = json.loads(run(capsys, server, "status", "--json")[1])
    assert info["audit"]["checkpoint"]["seq"] == 2 and info["audit"]["sealing"] == "ok"


def test_a5_only_root_and_current_auditors_get_checkpoints(
    server: SocketServer, sqlite_services: Services, unix_users: UserFactory
) -> None:
    auditor, lapsed, outsider = unix_users.create(), unix_users.create(), unix_users.create()
    add_project_with_auditor(sqlite_services, auditor.uid, auditor.name)
    with sqlite_services.store.write() as session:
        session.add(Member(project_id="p1", user=lapsed.name, uid=lapsed.uid, role="auditor",
                           granted_by="root", reason="appointed",
                           granted_at=datetime(2026, 1, 1, tzinfo=UTC),
                           expires_at=date(2026, 6, 30)))
    record(sqlite_services, 1)
    kept = run_as(auditor.name, server, "audit", "checkpoint")
    assert kept.returncode == 0, kept.stderr
    assert json.loads(json.loads(kept.stdout)["payload"])["seq"] >= 1
    for someone in (lapsed, outsider):
        refused = run_as(someone.name, server, "audit", "checkpoint")
        assert refused.returncode == 1 and refused.stdout == ""
        assert refused.stderr.startswith("vokter: only root and the auditors of a project")
        assert "(A5)" in refused.stderr
    anyone = run_as(outsider.name, server, "audit", "pubkey")
    assert anyone.returncode == 0 and anyone.stdout == sqlite_services.audit_keys.public_pem
    refusals = [e for e in audit_events(sqlite_services)
                if e.action == "audit.checkpoint" and e.outcome == "refused"]
    assert sorted(e.actor for e in refusals) == sorted([lapsed.name, outsider.name])
