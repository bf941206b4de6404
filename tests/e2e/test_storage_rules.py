"""The storage rules as people meet them (S4, S5, S7): a real vokterd watching real zones,
real users writing real files; within seconds of a file's close the daemon has encrypted it,
moved it to the key zone or quarantined it, and the violation is there to see. And no
identity number reaches the log, the audit trail or a violation."""

from __future__ import annotations

import json
import os
import random
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from tests.support.daemon import RunningDaemon, ok
from tests.support.identity_numbers import valid_numbers as identity_numbers
from tests.support.users import TestUser, UserFactory, write_as

PROJECT = "p5150"
TODAY = date(2026, 11, 23)
KOMMUNER = ["0301", "1103", "4601", "5001", "1804", "3024"]




def cohort_csv(count: int = 60, seed: int = 1) -> bytes:
    rnd = random.Random(seed)
    lines = ["fnr;hba1c;kommune;kjonn"]
    lines += [f"{n};{rnd.randint(30, 90)};{rnd.choice(KOMMUNER)};{rnd.choice('MK')}"
              for n in identity_numbers(count, seed)]
    return ("\n".join(lines) + "\n").encode()


def linkage_csv(count: int = 60, seed: int = 2) -> bytes:
    lines = ["fnr,lopenr"]
    lines += [f"{n},{1000 + i}" for i, n in enumerate(identity_numbers(count, seed))]
    return ("\n".join(lines) + "\n").encode()


def clean_csv() -> bytes:
    return b"lopenr;hba1c\n" + b"".join(f"{i};{i % 60 + 30}\n".encode() for i in range(200))


@dataclass
class Enclave:
    daemon: RunningDaemon
    leader: TestUser
    member: TestUser

    def zone(self, kind: str, project: str = PROJECT) -> Path:
        return self.daemon.zones_dir / project / kind

    def write_as(self, user: TestUser, path: Path, data: bytes) -> None:
        write_as(user, path, data)

    def violations(self, *args: str) -> list[dict[str, Any]]:
        listed: list[dict[str, Any]] = json.loads(
            ok(self.daemon.vokter("violations", "list", *args, "--json",
                                  user=self.leader.name)))
        return listed


def eventually(check: Callable[[], Any], seconds: float = 15.0) -> Any:
    """Poll until ``check()`` is truthy; the daemon acts on its own time, not the test's."""
    deadline = time.monotonic() + seconds
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.05)


@pytest.fixture
def enclave(daemon: RunningDaemon, unix_users: UserFactory) -> Iterator[Enclave]:
    leader, member = unix_users.create("vsl"), unix_users.create("vsm")
    ok(daemon.vokter("project", "create", PROJECT, "--title", "Diabetes cohort", "--leader",
                     leader.name, "--end-date", "2030-06-30"))
    ok(daemon.vokter("member", "add", PROJECT, member.name, "--role", "member", "--reason",
                     "analysis", user=leader.name))
    yield Enclave(daemon, leader, member)
    assert_no_identity_number_escaped(daemon)


def assert_no_identity_number_escaped(daemon: RunningDaemon) -> None:
    """Everything the daemon wrote about the files: its log, the audit trail, the violations."""
    found = daemon.identity_numbers_recorded()
    assert found == 0, f"{found} identity numbers escaped into the daemon's records"


def test_s4_identity_numbers_written_to_the_data_zone_are_encrypted_in_place(
        enclave: Enclave) -> None:
    plain = enclave.zone("data") / "cohort.csv"
    enclave.write_as(enclave.member, plain, cohort_csv())
    sealed = plain.with_name("cohort.csv.tink")
    assert eventually(lambda: sealed.exists() and not plain.exists())
    assert sealed.stat().st_uid == enclave.member.uid  # the member's file still
    [violation] = eventually(lambda: enclave.violations(PROJECT))
    assert (violation["rule"], violation["kind"], violation["action"],
            violation["outcome"]) == ("S4", "identity_numbers", "encrypt", "done")
    assert violation["path"] == str(plain)
    assert "column fnr: 60 valid of 60 rows" in violation["summary"]
    events = [e for e in enclave.daemon.audit_events() if e["action"] == "violation.detected"]
    assert [(e["rule"], e["project_id"], e["target"]) for e in events] == [
        ("S4", PROJECT, str(plain))]
    # Encrypted, not lost: the member decrypts it to the very bytes written.
    out = enclave.daemon.root / f"out-{enclave.member.name}"
    out.mkdir(mode=0o700)
    os.chown(out, enclave.member.uid, enclave.member.gid)
    ok(enclave.daemon.vokter("decrypt", str(sealed), "-o", str(out / "c.csv"),
                             user=enclave.member.name))
    assert (out / "c.csv").read_bytes() == cohort_csv()


def test_s4_a_clean_file_and_single_numbers_in_a_bank_column_are_left_alone(
        enclave: Enclave) -> None:
    clean = enclave.zone("data") / "analysis.csv"
    enclave.write_as(enclave.member, clean, clean_csv())
    marker = enclave.zone("data") / "cohort.csv"
    enclave.write_as(enclave.member, marker, cohort_csv())
    # The file written after the clean one has been judged: so has the clean one.
    assert eventually(lambda: marker.with_name("cohort.csv.tink").exists())
    assert clean.read_bytes() == clean_csv()
    assert [v["path"] for v in enclave.violations(PROJECT)] == [str(marker)]


def test_s5_a_linkage_key_in_the_data_zone_is_moved_to_the_key_zone_and_sealed(
        enclave: Enclave) -> None:
    plain = enclave.zone("data") / "koblingsnokkel.csv"
    enclave.write_as(enclave.leader, plain, linkage_csv())
    sealed = enclave.zone("key") / "koblingsnokkel.csv.tink"
    assert eventually(lambda: sealed.exists())
    assert not plain.exists()
    assert not (enclave.zone("key") / "koblingsnokkel.csv").exists()
    [violation] = eventually(lambda: enclave.violations(PROJECT))
    assert (violation["rule"], violation["kind"], violation["action"],
            violation["outcome"]) == ("S5", "linkage_key", "move_to_key_zone", "done")
    assert "lopenr" in violation["summary"]
    # Members have no access to the key (S6): not even to open what was theirs.
    result = subprocess.run(["runuser", "-u", enclave.member.name, "--", "cat", str(sealed)],
                            capture_output=True, timeout=30)
    assert result.returncode != 0


def test_s7_plaintext_identifiers_in_the_export_zone_are_blocked_in_the_quarantine(
        enclave: Enclave) -> None:
    plain = enclave.zone("export") / "til_samarbeidspartner.csv"
    enclave.write_as(enclave.member, plain, cohort_csv(seed=7))
    assert eventually(lambda: not plain.exists())
    quarantined = enclave.zone("quarantine") / "export-til_samarbeidspartner.csv"
    assert quarantined.read_bytes() == cohort_csv(seed=7)  # blocked, not lost
    [violation] = eventually(lambda: enclave.violations(PROJECT))
    assert (violation["rule"], violation["action"], violation["outcome"]) == (
        "S7", "quarantine", "done")
    assert str(quarantined) in violation["action_note"]


def test_s4_a_file_still_being_written_is_judged_only_after_its_close(
        enclave: Enclave) -> None:
    plain = enclave.zone("data") / "growing.csv"
    writer = subprocess.Popen(
        ["runuser", "-u", enclave.member.name, "--", "sh", "-c",
         'cat > "$1"', "sh", str(plain)], stdin=subprocess.PIPE)
    assert writer.stdin is not None
    data = cohort_csv(seed=11)
    writer.stdin.write(data[: len(data) // 2])
    writer.stdin.flush()
    marker = enclave.zone("data") / "cohort.csv"
    enclave.write_as(enclave.member, marker, cohort_csv())
    assert eventually(lambda: marker.with_name("cohort.csv.tink").exists())
    # Identity numbers have been in it for a while, but the writer has not closed it.
    assert plain.exists() and not plain.with_name("growing.csv.tink").exists()
    writer.stdin.write(data[len(data) // 2:])
    writer.stdin.close()
    assert writer.wait(timeout=30) == 0
    assert eventually(lambda: plain.with_name("growing.csv.tink").exists())


def test_s4_files_of_a_project_created_while_running_are_watched_without_restart(
        enclave: Enclave) -> None:
    ok(enclave.daemon.vokter("project", "create", "p5151", "--title", "Later", "--leader",
                             enclave.leader.name, "--end-date", "2031-01-31"))
    plain = enclave.zone("data", "p5151") / "cohort.csv"
    enclave.write_as(enclave.leader, plain, cohort_csv())
    assert eventually(lambda: plain.with_name("cohort.csv.tink").exists())


def test_s4_a_directory_moved_into_the_zone_is_judged_whole(enclave: Enclave) -> None:
    staging = enclave.zone("data") / "sub" / "deeper"
    outside = enclave.daemon.root / "staging"
    outside.mkdir()
    (outside / "cohort.csv").write_bytes(cohort_csv())
    (enclave.zone("data") / "sub").mkdir()
    os.rename(outside, staging)
    assert eventually(lambda: (staging / "cohort.csv.tink").exists())


def test_s4_files_dropped_while_the_daemon_was_down_are_judged_at_start(
        enclave: Enclave) -> None:
    enclave.daemon.stop()
    plain = enclave.zone("data") / "while_down.csv"
    plain.write_bytes(cohort_csv(seed=3))
    enclave.daemon.start()
    assert eventually(lambda: plain.with_name("while_down.csv.tink").exists())


def test_s4_vokter_scan_reports_and_does_not_repeat_open_findings(enclave: Enclave) -> None:
    enclave.daemon.stop()
    note = enclave.zone("data") / "notes.txt"
    numbers = identity_numbers(2, seed=5)
    note.write_text(f"called {numbers[0]} about the form; see also {numbers[1]}\n")
    enclave.daemon.start()
    first = json.loads(ok(enclave.daemon.vokter("scan", PROJECT, "--json",
                                                user=enclave.leader.name)))
    second = json.loads(ok(enclave.daemon.vokter("scan", PROJECT, "--json",
                                                 user=enclave.leader.name)))
    assert first["files"] == second["files"] == 1
    assert second["findings"] == 1 and second["violations"] == []  # already open
    [violation] = enclave.violations(PROJECT)
    assert (violation["rule"], violation["kind"], violation["action"]) == (
        "S4", "identity_numbers_in_text", "alert")
    assert note.exists()  # single hits in text are reported, the file is left as it is
    assert "2 single identity-number hit" in violation["summary"]


def test_s1_a_copy_of_a_data_zone_file_in_a_home_folder_is_found_by_vokter_scan(
        enclave: Enclave) -> None:
    original = enclave.zone("data") / "analysis.csv"
    enclave.write_as(enclave.member, original, clean_csv())
    home = Path("/home") / enclave.member.name
    home.mkdir(exist_ok=True)
    try:
        (home / "my-copy.csv").write_bytes(clean_csv())
        (home / "unrelated.csv").write_bytes(clean_csv().replace(b"lopenr", b"serial"))
        result = json.loads(ok(enclave.daemon.vokter("scan", PROJECT, "--json",
                                                     user=enclave.leader.name)))
        assert result["copies"] == 1
        [violation] = [v for v in enclave.violations(PROJECT) if v["rule"] == "S1"]
        assert violation["path"] == str(home / "my-copy.csv")
        assert str(original) in violation["summary"]
        assert (home / "my-copy.csv").exists()  # reported, never deleted: it is a person's file
    finally:
        for name in ("my-copy.csv", "unrelated.csv"):
            (home / name).unlink(missing_ok=True)


def test_s4_after_the_kernel_lost_events_every_zone_is_judged_again(
        enclave_root: Path, unix_users: UserFactory) -> None:
    """A real overflow: the kernel's inotify queue made tiny (16 events) for the daemon's
    instance, then flooded with renames (which need no open, so the access gate does not
    pace them) while files with identity numbers arrive."""
    limit = Path("/proc/sys/fs/inotify/max_queued_events")
    saved = limit.read_text()
    daemon = RunningDaemon(enclave_root)
    limit.write_text("16\n")
    try:
        daemon.start()
    finally:
        limit.write_text(saved)
    try:
        ok(daemon.vokter("project", "create", PROJECT, "--title", "Overflow", "--leader",
                         "root", "--end-date", "2030-06-30"))
        data = daemon.zones_dir / PROJECT / "data"
        (data / "a.csv").write_bytes(clean_csv())
        for index in range(3):
            for _ in range(3000):
                os.rename(data / "a.csv", data / "b.csv")
                os.rename(data / "b.csv", data / "a.csv")
            (data / f"cohort{index}.csv").write_bytes(cohort_csv(seed=20 + index))
        for index in range(3):
            assert eventually(lambda i=index: (data / f"cohort{i}.csv.tink").exists())
        status = json.loads(ok(daemon.vokter("status", "--json")))
        assert status["storage"]["overflows"] >= 1
        assert status["storage"]["full_scans"] >= 2  # at start, and after the overflow
    finally:
        daemon.stop()


def test_s4_a_symlink_in_a_zone_is_never_followed_out_of_it(enclave: Enclave) -> None:
    outside = enclave.daemon.root / "outside-cohort.csv"
    outside.write_bytes(cohort_csv(seed=30))
    link = enclave.zone("data") / "cohort-link.csv"
    link.symlink_to(outside)
    marker = enclave.zone("data") / "cohort.csv"
    enclave.write_as(enclave.member, marker, cohort_csv())
    assert eventually(lambda: marker.with_name("cohort.csv.tink").exists())
    ok(enclave.daemon.vokter("scan", PROJECT, user=enclave.leader.name))
    assert outside.read_bytes() == cohort_csv(seed=30)  # not encrypted, not moved
    assert link.is_symlink()
    assert [v["path"] for v in enclave.violations(PROJECT)] == [str(marker)]


def test_s5_status_warns_of_a_key_zone_on_the_data_zone_s_file_system(enclave: Enclave) -> None:
    """The test enclave keeps every zone on one file system: the policy wants them apart."""
    out = enclave.daemon.vokter("status", user=enclave.leader.name)
    assert out.returncode == 0
    assert f"S5: {PROJECT}: the key zone" in " ".join(out.stderr.split())
    info = json.loads(ok(enclave.daemon.vokter("status", "--json", user=enclave.leader.name)))
    [warning] = info["warnings"]
    assert warning.startswith(f"S5: {PROJECT}:") and "separate file system" in warning


def test_s4_a_file_named_like_the_daemon_s_temporaries_is_judged_all_the_same(
        enclave: Enclave) -> None:
    """The daemon knows its own temporaries by inode, not by name: a name cannot hide a file."""
    hidden = enclave.zone("data") / ".cohort.csv.moving"
    enclave.write_as(enclave.member, hidden, cohort_csv(seed=40))
    [violation] = eventually(lambda: enclave.violations(PROJECT))
    assert (violation["rule"], violation["path"]) == ("S4", str(hidden))
    assert "60 single identity-number hit" in violation["summary"]  # not a .csv: read as text


def test_s4_a_resolved_violation_does_not_come_back_for_the_unchanged_file(
        enclave: Enclave) -> None:
    note = enclave.zone("data") / "notes.txt"
    enclave.write_as(enclave.member, note,
                     f"called {identity_numbers(1, seed=6)[0]} about the form\n".encode())
    [violation] = eventually(lambda: enclave.violations(PROJECT))
    ok(enclave.daemon.vokter("violations", "resolve", str(violation["id"]), "--note",
                             "the member was told; the note is needed", user=enclave.leader.name))
    result = json.loads(ok(enclave.daemon.vokter("scan", PROJECT, "--json",
                                                 user=enclave.leader.name)))
    assert result["findings"] == 1 and result["violations"] == []
    assert [v["status"] for v in enclave.violations(PROJECT)] == ["resolved"]
