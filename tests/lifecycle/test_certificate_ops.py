"""Issuing the certificate of disposal against real services (SQLite and PostgreSQL, the real
audit trail and its keys), and handing it out through dispatch into a real file descriptor (L2).
The path people take, through vokterd and the CLI as real users, is in
tests/lifecycle/test_certificate_cli.py."""

from __future__ import annotations

import hashlib
import json
import os
import stat
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update
from sqlmodel import col, select

from agent.api.dispatch import Attachments, Caller, RequestContext, dispatch
from agent.audit.keys import key_id_of
from agent.audit.sealer import seal
from agent.audit.sealing import daemon_caller
from agent.errors import AuditUnavailable
from agent.lifecycle.certificate_check import check_certificate
from agent.lifecycle.certificate_ops import (
    CERTIFICATE_ISSUED,
    certificate_path,
    issue_certificate,
)
from agent.operations import OPERATIONS
from agent.services import Services
from agent.store.tables import AuditCheckpoint, AuditEvent, Member
from tests.api.inprocess import audit_events
from tests.lifecycle.test_certificate import sample_record
from tests.lifecycle.test_copy_ops import LEADER, ROOT, add_project

PROJECT = "p1234"
AUDITOR = Caller(uid=4343, gid=4343, pid=778, name="bob")
MEMBER = Caller(uid=4444, gid=4444, pid=779, name="carol")
OUTSIDER = Caller(uid=4545, gid=4545, pid=780, name="dave")


@pytest.fixture
def enclave(services: Services) -> Services:
    """A project that was disposed of, with a leader, an auditor and a member, and a state
    directory as the daemon makes it."""
    services.config.state_dir.mkdir(mode=0o700, exist_ok=True)
    add_project(services, PROJECT, "deleted")
    now = services.clock.now()
    with services.store.write() as session:
        for caller, role in ((AUDITOR, "auditor"), (MEMBER, "member")):
            session.add(Member(project_id=PROJECT, user=caller.name, uid=caller.uid, role=role,
                               granted_by="root", reason="test", granted_at=now))
    return services


def record_event(services: Services, action: str) -> None:
    with services.store.write() as session:
        RequestContext(daemon_caller(), services).audit(session, action, project=PROJECT,
                                                         target=PROJECT, rule="L2")


def checkpoint_seqs(services: Services) -> list[int]:
    with services.store.read() as session:
        return list(session.exec(select(AuditCheckpoint.seq)
                                 .order_by(col(AuditCheckpoint.id))).all())


def a_run(services: Services) -> tuple[Any, int]:
    """Events and checkpoints as around a real run: one sealed before it began, one sealed
    while it ran (not the checkpoint before), and the run's own events. Returns the record and
    the sequence number of the checkpoint before."""
    record_event(services, "lifecycle.disposing")
    assert seal(services).made is not None
    before = checkpoint_seqs(services)[-1]
    services.clock.advance(timedelta(minutes=5))  # type: ignore[attr-defined]
    started = services.clock.now()
    services.clock.advance(timedelta(seconds=1))  # type: ignore[attr-defined]
    record_event(services, "project.key_shredded")
    assert seal(services).made is not None  # the sealer's tick during the run
    record_event(services, "lifecycle.disposal_run")
    services.clock.advance(timedelta(minutes=3))  # type: ignore[attr-defined]
    return sample_record(project=PROJECT, started=started,
                         finished=services.clock.now()), before


def test_l2_issuing_seals_after_the_run_names_the_checkpoint_before_and_keeps_it_signed(
    enclave: Services,
) -> None:
    services = enclave
    record, before = a_run(services)
    path = issue_certificate(services, record)
    assert path == services.config.state_dir / "disposal" / PROJECT / "certificate.json"
    assert path == certificate_path(services, PROJECT)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    text = path.read_bytes()
    keys = services.audit_keys
    check = check_certificate(text, keys.public_key, key_id_of(keys.public_key))
    assert check.ok, check.problem
    cert = check.certificate
    assert cert is not None and cert.project == PROJECT and cert.key_id == keys.key_id
    assert cert.before_seq == before
    events = audit_events(services)
    run_event = next(e for e in events if e.action == "lifecycle.disposal_run")
    assert cert.after_seq is not None and cert.after_seq >= run_event.seq
    after = cert.body["audit"]["after"]
    assert after["project_seq"] == run_event.project_seq and after["key_id"] == keys.key_id
    assert cert.body["tool"]["version"] == services.version
    assert cert.issued_at == services.clock.now()
    last = events[-1]
    details = json.loads(last.details)
    assert (last.action, last.project_id, last.rule, last.outcome) == (
        CERTIFICATE_ISSUED, PROJECT, "L2", "ok")
    assert details["sha256"] == hashlib.sha256(text).hexdigest()
    assert (details["files"], details["checkpoint_before"], details["checkpoint_after"]) == (
        3, before, cert.after_seq)
    assert not [name for name in os.listdir(path.parent) if name.endswith(".tmp")]


def test_l2_a_forged_checkpoint_row_is_never_named_as_the_one_before(
    enclave: Services,
) -> None:
    services = enclave
    record, before = a_run(services)
    with services.store.write() as session:
        genuine = session.exec(select(AuditCheckpoint).where(AuditCheckpoint.seq == before)
                               ).one()
        session.add(AuditCheckpoint(time=record.started_at, seq=genuine.seq + 1,
                                    head=genuine.head, key_id=genuine.key_id,
                                    payload=genuine.payload.replace(
                                        f'"seq":{genuine.seq}', f'"seq":{genuine.seq + 1}'),
                                    signature=genuine.signature))
    cert = check_certificate(issue_certificate(services, record).read_bytes(),
                             services.audit_keys.public_key, services.audit_keys.key_id)
    assert cert.certificate is not None and cert.certificate.before_seq == before


def test_l2_a_trail_never_sealed_before_the_run_says_so(enclave: Services) -> None:
    services = enclave
    record = sample_record(project=PROJECT, started=services.clock.now())
    record_event(services, "lifecycle.disposal_run")
    cert = check_certificate(issue_certificate(services, record).read_bytes(),
                             services.audit_keys.public_key, services.audit_keys.key_id)
    assert cert.certificate is not None
    assert cert.certificate.before_seq is None and cert.certificate.after_seq > 0


def test_l2_no_certificate_is_issued_over_a_damaged_trail(enclave: Services) -> None:
    services = enclave
    record, _ = a_run(services)
    with services.store.write() as session:
        last = session.exec(select(AuditEvent.seq).order_by(col(AuditEvent.seq).desc())).first()
        session.execute(update(AuditEvent).where(col(AuditEvent.seq) == last)
                        .values(target="someone else"))
    with pytest.raises(AuditUnavailable, match="no certificate is issued"):
        issue_certificate(services, record)
    assert not certificate_path(services, PROJECT).exists()
    assert CERTIFICATE_ISSUED not in [event.action for event in audit_events(services)]


# --- handing it out ---------------------------------------------------------------------------


@pytest.fixture
def output(tmp_path: Path) -> Iterator[int]:
    fd = os.open(tmp_path / "out", os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
    os.write(fd, b"left over from before, longer than nothing")
    try:
        yield fd
    finally:
        os.close(fd)


def fetch(services: Services, caller: Caller, fd: int, **args: Any) -> dict[str, Any]:
    return dispatch({"v": 1, "op": "lifecycle.certificate", "args": {"project": PROJECT, **args}},
                    caller, services, OPERATIONS, Attachments(fds=(fd,)))


def written(fd: int) -> bytes:
    os.lseek(fd, 0, os.SEEK_SET)
    chunks = []
    while chunk := os.read(fd, 1 << 20):
        chunks.append(chunk)
    return b"".join(chunks)


def test_l2_before_the_run_completes_the_certificate_is_refused_with_one_clear_line(
    enclave: Services, output: int
) -> None:
    answer = fetch(enclave, LEADER, output)
    assert answer["ok"] is False
    error = answer["error"]
    assert (error["type"], error["rule"]) == ("NotFound", "L2")
    assert error["message"] == f"no certificate of disposal has been issued for {PROJECT}"
    assert "vokter lifecycle plan" in error["hint"]


@pytest.mark.parametrize("caller", [ROOT, LEADER, AUDITOR], ids=["root", "leader", "auditor"])
def test_l2_root_the_leader_and_the_auditors_get_the_signed_json_as_kept(
    enclave: Services, output: int, caller: Caller
) -> None:
    record, _ = a_run(enclave)
    kept = issue_certificate(enclave, record).read_bytes()
    answer = fetch(enclave, caller, output)
    assert answer["ok"] is True, answer
    result = answer["result"]
    assert written(output) == kept
    assert (result["format"], result["bytes"], result["sha256"], result["files"]) == (
        "json", len(kept), hashlib.sha256(kept).hexdigest(), 3)


def test_l2_the_page_is_rendered_from_the_kept_certificate(
    enclave: Services, output: int
) -> None:
    record, _ = a_run(enclave)
    issue_certificate(enclave, record)
    answer = fetch(enclave, AUDITOR, output, html=True)
    assert answer["ok"] is True, answer
    page = written(output).decode()
    assert page.startswith("<!DOCTYPE html>") and page.endswith("</html>\n")
    assert "cohort/part-000002.csv" in page and "Certificate of disposal" in page
    assert answer["result"]["format"] == "html"
    assert answer["result"]["bytes"] == len(page.encode())


@pytest.mark.parametrize(("caller", "kind", "says"), [
    (MEMBER, "PermissionDenied", "as member of p1234 you may not"),
    (OUTSIDER, "NotFound", "no project p1234"),
], ids=["member", "outsider"])
def test_l2_members_are_refused_and_outsiders_learn_nothing(
    enclave: Services, output: int, caller: Caller, kind: str, says: str
) -> None:
    record, _ = a_run(enclave)
    issue_certificate(enclave, record)
    answer = fetch(enclave, caller, output)
    assert answer["ok"] is False and answer["error"]["type"] == kind
    assert answer["error"]["message"].startswith(says)
    assert written(output) == b"left over from before, longer than nothing"


def test_l2_a_certificate_changed_on_disk_is_refused_not_handed_out(
    enclave: Services, output: int
) -> None:
    record, _ = a_run(enclave)
    path = issue_certificate(enclave, record)
    path.write_bytes(path.read_bytes().replace(b"part-000001", b"part-000008"))
    answer = fetch(enclave, ROOT, output)
    assert answer["ok"] is False and answer["error"]["type"] == "Failed"
    assert "does not verify" in answer["error"]["message"]
    assert written(output) == b"left over from before, longer than nothing"


def test_l2_an_output_opened_for_reading_only_is_refused(
    enclave: Services, tmp_path: Path
) -> None:
    record, _ = a_run(enclave)
    issue_certificate(enclave, record)
    (tmp_path / "ro").write_bytes(b"")
    fd = os.open(tmp_path / "ro", os.O_RDONLY)
    try:
        answer = fetch(enclave, ROOT, fd)
    finally:
        os.close(fd)
    assert answer["ok"] is False and answer["error"]["type"] == "InvalidRequest"
