"""The certificate of disposal through the real ``vokter``: checked offline with the public key
alone, and fetched from a running vokterd by real users with their own rights (L2).

The disposal run that issues a certificate at its end is the daemon's; here the certificate is
issued into the running daemon's state directory by the same function the run calls, against
the daemon's own database and audit keys, so the fetching is tested on its own."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.audit.keys import load_or_create_audit_keys, public_pem
from agent.clock import SystemClock
from agent.config import Config
from agent.crypto.keystore import open_key_store
from agent.lifecycle.certificate_ops import issue_certificate
from agent.policy import load_default_policy
from agent.services import PolicyHolder, Services
from agent.store import Store
from tests.e2e.test_access import PROJECT, member_add
from tests.lifecycle.test_certificate import sample_record, signed
from tests.support.daemon import VOKTER, RunningDaemon, ok, one_line_failure
from tests.support.users import TestUser, UserFactory


def vokter(*args: str) -> subprocess.CompletedProcess[str]:
    """The CLI with no daemon anywhere: a request would fail, an offline check must not."""
    return subprocess.run([str(VOKTER), "--socket", "/nonexistent/vokterd.sock", *args],
                          capture_output=True, text=True, timeout=60, check=False)


@pytest.fixture
def offline(tmp_path: Path) -> tuple[Path, Path, Ed25519PrivateKey]:
    key = Ed25519PrivateKey.generate()
    certificate = tmp_path / "p1234-certificate.json"
    certificate.write_bytes(signed(sample_record(), key))
    pubkey = tmp_path / "vokter-audit.pub"
    pubkey.write_text(public_pem(key.public_key()))
    return certificate, pubkey, key


def test_l2_verify_certificate_says_ok_and_sums_it_up_with_no_daemon(
    offline: tuple[Path, Path, Ed25519PrivateKey],
) -> None:
    certificate, pubkey, _ = offline
    out = ok(vokter("lifecycle", "verify-certificate", str(certificate), "--pubkey",
                    str(pubkey)))
    assert out.startswith("OK: certificate of disposal of p1234 (deletion): 3 files, 303 bytes; "
                          "issued 2026-04-20 09:03:13 UTC, signed by key ")
    assert out.rstrip().endswith("checkpoints before the run: event 10, after: event 42")
    shown = json.loads(ok(vokter("lifecycle", "verify-certificate", str(certificate),
                                 "--pubkey", str(pubkey), "--json")))
    assert (shown["ok"], shown["project"], shown["files"], shown["kind"]) == (
        True, "p1234", 3, None)


def test_l2_verify_certificate_names_a_changed_byte_a_wrong_key_and_a_malformed_file(
    offline: tuple[Path, Path, Ed25519PrivateKey], tmp_path: Path
) -> None:
    certificate, pubkey, _ = offline
    text = certificate.read_bytes()
    changed = tmp_path / "changed.json"
    changed.write_bytes(text.replace(b"part-000002.csv", b"part-000003.csv"))
    line = one_line_failure(vokter("lifecycle", "verify-certificate", str(changed),
                                   "--pubkey", str(pubkey)))
    assert line.startswith(f"vokter: {changed}: the signature does not match: the "
                           "certificate was changed after it was signed")

    other = tmp_path / "other.pub"
    other.write_text(public_pem(Ed25519PrivateKey.generate().public_key()))
    line = one_line_failure(vokter("lifecycle", "verify-certificate", str(certificate),
                                   "--pubkey", str(other)))
    assert "not the key given" in line

    malformed = tmp_path / "malformed.json"
    malformed.write_bytes(text[: len(text) // 2])
    line = one_line_failure(vokter("lifecycle", "verify-certificate", str(malformed),
                                   "--pubkey", str(pubkey)))
    assert line == f"vokter: {malformed}: not a certificate: not JSON"

    result = vokter("lifecycle", "verify-certificate", str(malformed), "--pubkey", str(pubkey),
                    "--json")
    assert result.returncode == 1
    assert json.loads(result.stdout)["kind"] == "malformed"

    line = one_line_failure(vokter("lifecycle", "verify-certificate", str(certificate),
                                   "--pubkey", str(certificate)))
    assert "not a PEM public key" in line
    line = one_line_failure(vokter("lifecycle", "verify-certificate", str(certificate),
                                   "--pubkey", str(tmp_path / "missing.pub")))
    assert "cannot read" in line and "missing.pub" in line


def test_l2_certificate_json_describes_only_a_file_written_with_o() -> None:
    line = one_line_failure(vokter("lifecycle", "certificate", "p1234", "--json"), code=2)
    assert "--json describes a file written with -o FILE" in line


# --- against a running daemon -----------------------------------------------------------------


@pytest.fixture
def daemon_services(daemon: RunningDaemon) -> Iterator[Services]:
    """What the daemon's disposal run has at hand: its database, its key store, its state."""
    config = Config(state_dir=daemon.state_dir, socket_path=daemon.socket_path,
                    key_store=daemon.key_store, zones_dir=daemon.zones_dir)
    store = Store(f"sqlite:///{daemon.state_dir / 'vokter.db'}")
    clock = SystemClock()
    try:
        yield Services(config=config, store=store, clock=clock,
                       policies=PolicyHolder(load_default_policy()), version="test",
                       audit_keys=load_or_create_audit_keys(config.key_store,
                                                            trail_started=True),
                       key_store=open_key_store(config, store, clock=clock))
    finally:
        store.close()


def own_folder(daemon: RunningDaemon, user: TestUser) -> Path:
    folder = daemon.root / f"home-{user.name}"
    folder.mkdir(mode=0o700)
    os.chown(folder, user.uid, user.gid)
    return folder


def test_l2_the_leader_and_auditor_take_the_certificate_out_and_it_checks_offline(
    daemon: RunningDaemon, daemon_services: Services, unix_users: UserFactory
) -> None:
    leader, auditor, member = (unix_users.create("vkl"), unix_users.create("vka"),
                               unix_users.create())
    ok(daemon.vokter("project", "create", PROJECT, "--title", "Night shifts", "--leader",
                     leader.name, "--end-date", "2030-06-30"))
    member_add(daemon, leader, member)
    ok(daemon.vokter("member", "add", PROJECT, auditor.name, "--role", "auditor", "--reason",
                     "research-integrity office"))
    mine = own_folder(daemon, leader)
    line = one_line_failure(daemon.vokter("lifecycle", "certificate", PROJECT, "-o",
                                          str(mine / "c.json"), user=leader.name))
    assert line.startswith(f"vokter: no certificate of disposal has been issued for {PROJECT} "
                           "(L2)")
    assert list(mine.iterdir()) == []

    now = daemon_services.clock.now()
    record = sample_record(project=PROJECT, started=now - timedelta(minutes=2), finished=now)
    kept = issue_certificate(daemon_services, record)
    assert kept.parent == daemon.state_dir / "disposal" / PROJECT

    out = ok(daemon.vokter("lifecycle", "certificate", PROJECT, "-o", str(mine / "c.json"),
                           user=leader.name))
    assert out.startswith(f"signed certificate of disposal of {PROJECT} (deletion, 3 files, "
                          "issued ")
    taken = mine / "c.json"
    assert taken.read_bytes() == kept.read_bytes()
    assert (taken.stat().st_uid, taken.stat().st_gid) == (leader.uid, leader.gid)
    assert [p.name for p in mine.iterdir()] == ["c.json"]  # no temporary left behind
    pubkey = mine / "vokter-audit.pub"
    pubkey.write_text(ok(daemon.vokter("audit", "pubkey", user=leader.name)))
    checked = ok(daemon.vokter("lifecycle", "verify-certificate", str(taken), "--pubkey",
                               str(pubkey), user=leader.name))
    assert checked.startswith(f"OK: certificate of disposal of {PROJECT} (deletion)")

    line = one_line_failure(daemon.vokter("lifecycle", "certificate", PROJECT, "-o",
                                          str(taken), user=leader.name), code=2)
    assert "exists; pass --force to replace it" in line

    piped = daemon.vokter("lifecycle", "certificate", PROJECT, user=auditor.name)
    assert piped.returncode == 0 and piped.stdout.encode() == kept.read_bytes()
    theirs = own_folder(daemon, auditor)
    ok(daemon.vokter("lifecycle", "certificate", PROJECT, "--html", "-o",
                     str(theirs / "c.html"), user=auditor.name))
    page = (theirs / "c.html").read_text()
    assert page.startswith("<!DOCTYPE html>") and "cohort/part-000002.csv" in page

    line = one_line_failure(daemon.vokter("lifecycle", "certificate", PROJECT, user=member.name))
    assert "may not" in line
    issued = [e for e in daemon.audit_events() if e["action"] == "lifecycle.certificate_issued"]
    assert len(issued) == 1 and issued[0]["project_id"] == PROJECT
