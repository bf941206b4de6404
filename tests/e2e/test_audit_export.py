"""Audit exports as an auditor meets them (A5): a real vokterd, a real auditor appointed with
`vokter member add --role auditor`, `vokter audit export` run as that user into a directory
they own, and `vokter audit verify-export` with the public key alone; then the file tampered
with as someone holding it could."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    PublicFormat,
)

from tests.support.daemon import VOKTER, RunningDaemon, ok, one_line_failure
from tests.support.users import TestUser, UserFactory

PROJECT = "p4711"


@dataclass
class Enclave:
    daemon: RunningDaemon
    leader: TestUser
    auditor: TestUser
    member: TestUser
    home: Path
    pubkey: Path

    def vokter(self, *args: str, user: TestUser | None = None) -> subprocess.CompletedProcess[str]:
        return self.daemon.vokter(*args, user=None if user is None else user.name)

    def export(self, *args: str, user: TestUser | None = None) -> subprocess.CompletedProcess[str]:
        return self.vokter("audit", "export", *args, user=user or self.auditor)

    def verify(self, file: Path, *args: str) -> subprocess.CompletedProcess[str]:
        return self.vokter("audit", "verify-export", str(file), "--pubkey", str(self.pubkey),
                           *args, user=self.auditor)




@pytest.fixture
def enclave(daemon: RunningDaemon, unix_users: UserFactory) -> Iterator[Enclave]:
    leader, auditor = unix_users.create("vkl"), unix_users.create("vka")
    member = unix_users.create("vkm")
    ok(daemon.vokter("project", "create", PROJECT, "--title", "Shift work", "--leader",
                     leader.name, "--end-date", "2030-06-30"))
    ok(daemon.vokter("member", "add", PROJECT, auditor.name, "--role", "auditor", "--reason",
                     "the institution's audit"))
    ok(daemon.vokter("member", "add", PROJECT, member.name, "--role", "member", "--reason",
                     "cohort analysis", user=leader.name))
    # Refusals are events of the project too.
    daemon.vokter("member", "add", PROJECT, member.name, "--role", "auditor", "--reason",
                  "not the leader's to appoint", user=leader.name)
    home = daemon.root / "auditor-home"
    home.mkdir(mode=0o700)
    os.chown(home, auditor.uid, auditor.gid)
    pubkey = home / "vokter-audit.pub"
    pubkey.write_text(ok(daemon.vokter("audit", "pubkey", user=auditor.name)))
    os.chown(pubkey, auditor.uid, auditor.gid)
    yield Enclave(daemon, leader, auditor, member, home, pubkey)


def rows_of(path: Path) -> tuple[bytes, list[bytes]]:
    text = path.read_bytes()
    if path.suffix == ".csv":
        header, *rows = text.split(b"\r\n")[:-1]
        return header + b"\r\n", [row + b"\r\n" for row in rows]
    return b"", text.splitlines(keepends=True)


def test_a5_an_auditor_exports_their_project_and_any_tampering_fails_offline(
    enclave: Enclave,
) -> None:
    target = enclave.home / "p4711-audit.csv"
    out = ok(enclave.export("--project", PROJECT, "--format", "csv", "-o", str(target)))
    manifest = enclave.home / "p4711-audit.csv.manifest.json"
    assert f"to {target}" in out and f"manifest: {manifest}" in out
    for path in (target, manifest):
        assert path.stat().st_uid == enclave.auditor.uid  # the auditor's own files
    assert [p.name for p in enclave.home.iterdir() if p.name.endswith(".part")] == []
    verified = ok(enclave.verify(target))
    header, rows = rows_of(target)
    assert verified.startswith(f"OK: {len(rows)} events in {target}")
    assert f"project {PROJECT}'s whole chain" in verified
    original = target.read_bytes()

    def check(change: list[bytes], *expected: str) -> None:
        target.write_bytes(header + b"".join(change))
        line = one_line_failure(enclave.verify(target))
        assert line.startswith(f"vokter: {target}: "), line
        assert any(word in line for word in expected), line
        target.write_bytes(original)
        ok(enclave.verify(target))

    edited = list(rows)
    edited[2] = edited[2].replace(b"cohort analysis", b"cohort analysis and more")
    check(edited, "row 3:", "was changed")
    check(rows[:3] + rows[4:], "missing", "removed")
    check([*rows, rows[-1]], "added", "inserted", "repeats")

    other = enclave.home / "other.csv"
    ok(enclave.export("--project", PROJECT, "--format", "csv", "-o", str(other)))
    shutil.copy(enclave.home / "other.csv.manifest.json", manifest)
    assert "the manifest describes 'other.csv'" in one_line_failure(enclave.verify(target))


def test_a5_another_enclaves_key_fails(enclave: Enclave) -> None:
    target = enclave.home / "p.jsonl"
    ok(enclave.export("--project", PROJECT, "--format", "jsonl", "-o", str(target)))
    stranger = enclave.home / "stranger.pub"
    stranger.write_bytes(Ed25519PrivateKey.generate().public_key().public_bytes(
        Encoding.PEM, PublicFormat.SubjectPublicKeyInfo))
    line = one_line_failure(enclave.vokter("audit", "verify-export", str(target), "--pubkey",
                                           str(stranger), user=enclave.auditor))
    assert "not by this public key" in line
    as_json = enclave.vokter("audit", "verify-export", str(target), "--pubkey", str(stranger),
                             "--json", user=enclave.auditor)
    assert as_json.returncode == 1
    assert json.loads(as_json.stdout)["kind"] == "wrong_key"


def test_a5_root_exports_the_whole_trail(enclave: Enclave) -> None:
    target = enclave.daemon.root / "trail.jsonl"
    out = ok(enclave.vokter("audit", "export", "--format", "jsonl", "-o", str(target)))
    assert "(the whole trail)" in out
    events = [json.loads(line) for line in target.read_text().splitlines()]
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert {e["action"] for e in events} >= {"daemon.start", "project.create", "member.add"}
    verified = ok(enclave.vokter("audit", "verify-export", str(target), "--pubkey",
                                 str(enclave.pubkey)))
    assert "the whole trail" in verified


@pytest.mark.parametrize("who", ["member", "leader"])
def test_a5_a_non_auditor_is_refused_and_no_file_is_left(enclave: Enclave, who: str,
                                                         tmp_path: Path) -> None:
    person = enclave.member if who == "member" else enclave.leader
    folder = enclave.daemon.root / f"{who}-home"
    folder.mkdir(mode=0o700)
    os.chown(folder, person.uid, person.gid)
    result = enclave.export("--project", PROJECT, "--format", "csv", "-o",
                            str(folder / "x.csv"), user=person)
    assert "may not" in one_line_failure(result)
    assert list(folder.iterdir()) == []  # no file, no manifest, no temporary
    whole = enclave.export("--format", "csv", "-o", str(folder / "y.csv"), user=person)
    assert "only root exports the whole trail" in one_line_failure(whole)


def test_a5_filters_choose_rows_that_still_verify(enclave: Enclave) -> None:
    by_leader = enclave.home / "leader.jsonl"
    out = ok(enclave.export("--project", PROJECT, "--user", enclave.leader.name, "--format",
                            "jsonl", "-o", str(by_leader)))
    rows = [json.loads(line) for line in by_leader.read_text().splitlines()]
    assert rows and {r["actor"] for r in rows} == {enclave.leader.name}
    assert f"exported {len(rows)} events" in out
    ok(enclave.verify(by_leader))

    adds = enclave.home / "adds.csv"
    ok(enclave.export("--project", PROJECT, "--action", "member.add", "--format", "csv", "-o",
                      str(adds)))
    _, lines = rows_of(adds)
    assert len(lines) == 3 and all(b'"member.add"' in line for line in lines)
    ok(enclave.verify(adds))

    first = json.loads(by_leader.read_text().splitlines()[0])["time"]
    timed = enclave.home / "timed.jsonl"
    ok(enclave.export("--project", PROJECT, "--since", first, "--until", first, "--format",
                      "jsonl", "-o", str(timed)))
    assert all(json.loads(line)["time"] == first for line in timed.read_text().splitlines())
    ok(enclave.verify(timed))

    bad = enclave.export("--project", PROJECT, "--since", "2026-02-30T00:00:00Z", "--format",
                         "csv", "-o", str(enclave.home / "bad.csv"))
    assert "since: is not a real time" in one_line_failure(bad)
    assert not (enclave.home / "bad.csv").exists()


def test_a5_an_export_never_overwrites_unless_forced_and_replaces_a_symlink_not_its_target(
    enclave: Enclave,
) -> None:
    victim = enclave.daemon.root / "root-only.txt"
    victim.write_text("root's own\n")
    victim.chmod(0o600)
    target = enclave.home / "p.csv"
    os.symlink(victim, target)
    refused = enclave.export("--project", PROJECT, "--format", "csv", "-o", str(target))
    assert "exists; pass --force" in one_line_failure(refused, code=2)
    ok(enclave.export("--project", PROJECT, "--format", "csv", "-o", str(target), "--force"))
    assert victim.read_text() == "root's own\n"  # the daemon wrote only what the user opened
    assert not target.is_symlink() and target.stat().st_uid == enclave.auditor.uid
    ok(enclave.verify(target))


def test_a5_progress_shows_on_a_terminal_and_not_in_a_pipe(enclave: Enclave) -> None:
    piped = enclave.export("--project", PROJECT, "--format", "csv", "-o",
                           str(enclave.home / "piped.csv"))
    assert piped.returncode == 0 and piped.stderr == ""
    command = (f"{VOKTER} --config {enclave.daemon.config_path} audit export --project "
               f"{PROJECT} --format csv -o {enclave.home / 'tty.csv'}")
    on_terminal = subprocess.run(
        ["runuser", "-u", enclave.auditor.name, "--", "script", "-qec", command, "/dev/null"],
        capture_output=True, text=True, timeout=60, env={**os.environ, "TERM": "xterm"})
    assert on_terminal.returncode == 0, on_terminal.stdout
    assert "exporting" in on_terminal.stdout
    ok(enclave.verify(enclave.home / "tty.csv"))
