"""Disposal by deletion against a running daemon whose date the test sets (L2, L5): a hold
stops it, its release lets it run, the keyset goes first, every file of every zone goes, and
nothing outside the zones is touched."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pytest

from tests.e2e.test_access import as_user, member_add, wait_for
from tests.e2e.test_lifecycle_schedule import state_of
from tests.support.anonymity import independent_k
from tests.support.daemon import VOKTER, RunningDaemon, ok, one_line_failure
from tests.support.drill import PROJECT, create_project, running_dated, set_clock
from tests.support.users import UserFactory


@pytest.fixture
def deleting_daemon(enclave_root: Path) -> Iterator[RunningDaemon]:
    with running_dated(enclave_root, end_action='"delete"') as running:
        yield running


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_l2_l5_deletion_waits_for_the_hold_then_shreds_the_key_and_removes_every_file(
    deleting_daemon: RunningDaemon, unix_users: UserFactory
) -> None:
    daemon = deleting_daemon
    leader, member = unix_users.create("vkl"), unix_users.create()
    create_project(daemon, leader.name)
    member_add(daemon, leader, member)
    data = daemon.zones_dir / PROJECT / "data"
    outside = daemon.root / "outside"
    outside.mkdir()
    (outside / "keep.csv").write_text("not the project's\n")
    kept = digest(outside / "keep.csv")
    assert as_user(member, f"mkdir -p '{data}/a/b' && echo 1 > '{data}/a/b/t.csv' && "
                   f"echo 2 > '{data}/top.csv' && ln -s '{outside}' '{data}/a/link' && "
                   f"ln -s '{outside}/keep.csv' '{data}/keep-link.csv'").returncode == 0
    ok(daemon.vokter("encrypt", str(data / "top.csv"), user=member.name))
    taken_out = daemon.root / "taken-out.csv.tink"
    shutil.copy(data / "top.csv.tink", taken_out)
    taken_out.chmod(0o644)  # a copy the leader took out of the enclave

    set_clock(daemon, "2026-04-01T09:00:00+00:00")
    assert json.loads(ok(daemon.vokter("lifecycle", "run", "--json")))[0]["state"] == "ended"
    placed = json.loads(ok(daemon.vokter("hold", "place", PROJECT, "--reason",
                                         "supervisory_case", "--ref", "DT 26/0042", "--note",
                                         "case opened", "--json")))
    set_clock(daemon, "2026-04-20T09:00:00+00:00")  # past the grace: disposal is due
    held = json.loads(ok(daemon.vokter("lifecycle", "run", "--json")))[0]
    assert held["held"] and held["state"] == "ended" and held["applied"] == []
    assert (data / "a" / "b" / "t.csv").read_text() == "1\n"

    ok(daemon.vokter("hold", "release", str(placed["id"]), "--note", "case closed"))
    done = json.loads(ok(daemon.vokter("lifecycle", "run", "--json")))[0]
    assert done["applied"] == ["dispose", "deleted", "close"] and done["state"] == "closed"

    for zone in ("data", "key", "export", "quarantine"):
        assert list((daemon.zones_dir / PROJECT / zone).iterdir()) == []
    assert digest(outside / "keep.csv") == kept  # symlinks went, their targets stayed
    own = daemon.root / "leaders-own"
    own.mkdir()
    os.chown(own, leader.uid, leader.gid)
    refused = one_line_failure(daemon.vokter("decrypt", str(taken_out), "-o",
                                             str(own / "plain.csv"), "--project", PROJECT,
                                             user=leader.name))
    assert "shredded" in refused or "destroyed" in refused
    assert list(own.iterdir()) == []
    events = daemon.audit_events()
    shredded = [e for e in events if e["action"] == "project.key_shredded"]
    runs = [e for e in events if e["action"] == "lifecycle.disposal_run"]
    assert len(shredded) == 1 and shredded[0]["rule"] == "L2"
    # a/b/t.csv and top.csv.tink (encrypted in place); the two symlinks are not files.
    assert runs[-1]["outcome"] == "ok" and json.loads(runs[-1]["details"])["files"] == 2
    order = [e["action"] for e in events if e["action"] in (
        "project.key_shredded", "lifecycle.disposal_run", "lifecycle.deleted")]
    assert order == ["project.key_shredded", "lifecycle.disposal_run", "lifecycle.deleted"]
    # The certificate states each file's path, size and hash, and checks with the trail's
    # public key alone; the journals that named the files are gone.
    folder = daemon.state_dir / "disposal" / PROJECT
    assert sorted(p.name for p in folder.iterdir()) == ["certificate.json"]
    certificate = json.loads(json.loads((folder / "certificate.json").read_text())["payload"])
    listed = {entry["path"] for zone in certificate["files"]["zones"]
              for entry in zone["entries"] if entry["kind"] == "file"}
    assert certificate["files"]["files"] == 2
    assert listed >= {"a/b/t.csv", "top.csv.tink"}
    pubkey = daemon.root / "trail.pem"
    pubkey.write_text(ok(daemon.vokter("audit", "pubkey")))
    copy = daemon.root / "certificate.json"
    ok(daemon.vokter("lifecycle", "certificate", PROJECT, "-o", str(copy)))
    assert "OK" in ok(daemon.vokter("lifecycle", "verify-certificate", str(copy), "--pubkey",
                                    str(pubkey)))
    assert json.loads(ok(daemon.vokter("lifecycle", "run", "--json")))[0]["applied"] == []


def _make_files(folder: Path, count: int) -> None:
    for index in range(count):
        sub = folder / f"d{index % 50:02d}"
        sub.mkdir(exist_ok=True)
        (sub / f"f{index}.csv").write_text(f"{index}\n")


@pytest.mark.postgres
def test_l2_two_daemons_on_one_database_run_a_disposal_exactly_once(
    pg_url: str, enclave_root: Path, unix_users: UserFactory
) -> None:
    from sqlmodel import col, select

    from agent.store import Store
    from agent.store.tables import AuditEvent

    clock = f'clock_file = "{enclave_root}/clock"\n'
    daemons = []
    for name in ("a", "b"):
        (enclave_root / name).mkdir(mode=0o755)
        daemons.append(RunningDaemon(enclave_root / name, clock, database_url=pg_url,
                                     key_store=enclave_root / "keystore",
                                     policy_changes={"end_action": '"delete"'}))
    (enclave_root / "clock").write_text("2026-01-05T09:00:00+00:00\n")
    first, second = daemons
    try:
        first.start()
        second.start()
        leader = unix_users.create("vkl")
        create_project(first, leader.name)
        _make_files(first.zones_dir / PROJECT / "data", 3000)
        (enclave_root / "clock").write_text("2026-04-20T09:00:00+00:00\n")
        # Both daemons sweep at once, each as root would ask it.
        runs = [subprocess.Popen([str(VOKTER), "--config", str(daemon.config_path), "lifecycle",
                                  "run", "--json"], stdout=subprocess.PIPE, text=True)
                for daemon in daemons]
        outputs = [json.loads(run.communicate(timeout=120)[0]) for run in runs]
        assert all(run.returncode == 0 for run in runs)
        store = Store(pg_url)
        try:
            with store.read() as session:
                actions = [row.action for row in session.exec(
                    select(AuditEvent).where(AuditEvent.project_id == PROJECT)
                    .order_by(col(AuditEvent.seq))).all()]
        finally:
            store.close()
        assert actions.count("lifecycle.dispose") == 1
        assert actions.count("project.key_shredded") == 1
        assert actions.count("lifecycle.deleted") == 1
        assert [a for a in actions if a == "lifecycle.disposal_run"] == ["lifecycle.disposal_run"]
        states = {result[0]["state"] for result in outputs if result}
        assert "closed" in states or any(
            result and result[0]["waiting"] == "disposal busy" for result in outputs)
        assert list((first.zones_dir / PROJECT / "data").iterdir()) == []
    finally:
        for daemon in daemons:
            if daemon.process is not None:
                daemon.stop()


def test_l2_an_unfinished_disposal_is_resumed_from_its_journal_after_a_hard_kill(
    deleting_daemon: RunningDaemon, unix_users: UserFactory
) -> None:
    """A file that cannot be removed leaves the run unfinished; the daemon is then killed
    (SIGKILL) and restarted: its catch-up sweep carries on from the journal. (Killing at
    random points inside the removal itself: tests/lifecycle/test_removal_resume.py.)"""
    daemon = deleting_daemon
    leader = unix_users.create("vkl")
    create_project(daemon, leader.name)
    data = daemon.zones_dir / PROJECT / "data"
    _make_files(data, 200)
    stuck = data / "d07" / "f7.csv"
    made = subprocess.run(["chattr", "+i", str(stuck)], capture_output=True, text=True)
    if made.returncode != 0:
        pytest.skip(f"chattr +i does not work on this file system: {made.stderr.strip()}")
    try:
        set_clock(daemon, "2026-04-20T09:00:00+00:00")
        first = json.loads(ok(daemon.vokter("lifecycle", "run", "--json")))[0]
        assert first["state"] == "disposing" and first["waiting"] == "disposal incomplete"
        assert sorted(p.name for p in data.rglob("*.csv")) == ["f7.csv"]
    finally:
        subprocess.run(["chattr", "-i", str(stuck)], check=True)
    assert daemon.process is not None
    daemon.process.send_signal(signal.SIGKILL)
    daemon.process.wait()
    # Meanwhile the operator changes the policy's end action: the run that began as a
    # deletion stays one (its method was fixed when it began).
    policy = daemon.root / "policies" / "default.toml"
    policy.write_text(policy.read_text().replace('end_action = "delete"',
                                                 'end_action = "anonymise"'))
    daemon.start()  # the catch-up sweep resumes the run from its journal
    assert wait_for(lambda: state_of(daemon) == "closed", timeout=60)
    assert list(data.iterdir()) == []
    actions = [e["action"] for e in daemon.audit_events()]
    assert "lifecycle.deleted" in actions and "lifecycle.anonymised" not in actions
    runs = [e for e in daemon.audit_events() if e["action"] == "lifecycle.disposal_run"]
    assert [e["outcome"] for e in runs] == ["failed", "ok"]
    assert json.loads(runs[-1]["details"])["files"] == 200  # the plan, read back


def test_l6_l7_anonymising_disposal_keeps_only_k_anonymous_tables(
    enclave_root: Path, unix_users: UserFactory
) -> None:
    """The policy's default: the key zone goes, each table of the data zone is kept when
    5-anonymous, anonymised when it can be, deleted when not; other files are deleted."""
    with running_dated(enclave_root) as daemon:
        leader, custodian = unix_users.create("vkl"), unix_users.create()
        create_project(daemon, leader.name)
        member_add(daemon, leader, custodian, role="key_custodian")
        data = daemon.zones_dir / PROJECT / "data"
        key = daemon.zones_dir / PROJECT / "key"
        assert as_user(custodian, f"echo 'lopenr;navn' > '{key}/linkage.csv'").returncode == 0
        (data / "anonymisation.toml").write_text(
            'quasi_identifiers = ["alder", "kommune"]\nmax_suppression = 0.0\n'
            '[hierarchies]\nalder = "age"\nkommune = "municipality"\n')
        rows = "\n".join(f"{20 + i % 40};{['0301', '1103', '4601'][i % 3]};{i % 7}"
                         for i in range(300))
        (data / "visits.csv").write_text("alder;kommune;verdi\n" + rows + "\n")
        coarse = "\n".join(f"{[30, 40, 50][i % 3]};0301;{i}" for i in range(90))
        (data / "coarse.csv").write_text("alder;kommune;verdi\n" + coarse + "\n")
        (data / "notes.txt").write_text("interview notes\n")
        kept_before = digest(data / "coarse.csv")
        set_clock(daemon, "2026-04-20T09:00:00+00:00")
        done = json.loads(ok(daemon.vokter("lifecycle", "run", "--json")))[0]
        assert done["applied"] == ["end", "dispose", "anonymised", "close"], done
        assert list(key.iterdir()) == []
        # The notes (not a table) and the config (it describes the identifiers) went.
        assert sorted(p.name for p in data.iterdir()) == ["coarse.csv", "visits.csv"]
        assert digest(data / "coarse.csv") == kept_before  # 30 rows per class already
        anonymised = pl.read_csv(data / "visits.csv", separator=";", infer_schema=False)
        assert independent_k(anonymised, ["alder", "kommune"]) >= 5
        runs = [e for e in daemon.audit_events() if e["action"] == "lifecycle.disposal_run"]
        details = json.loads(runs[-1]["details"])
        assert details["method"] == "anonymise"
        assert details["tables"] == {"kept": 1, "anonymised": 1, "deleted": 2}


def test_l6_a_file_system_mounted_in_the_data_zone_keeps_the_disposal_waiting(
    dated_daemon: RunningDaemon, unix_users: UserFactory
) -> None:
    daemon = dated_daemon
    leader = unix_users.create("vkl")
    create_project(daemon, leader.name)
    # A bind mount of a folder on the same file system: no change of device gives it away.
    outside = daemon.root / "elsewhere"
    outside.mkdir()
    (outside / "copy.csv").write_text("a;b\n1;2\n")
    mounted = daemon.zones_dir / PROJECT / "data" / "usb"
    mounted.mkdir()
    subprocess.run(["mount", "--bind", str(outside), str(mounted)], check=True)
    try:
        set_clock(daemon, "2026-04-20T09:00:00+00:00")
        waiting = json.loads(ok(daemon.vokter("lifecycle", "run", "--json")))[0]
        assert waiting["state"] == "disposing" and waiting["waiting"] == "disposal incomplete"
        assert (mounted / "copy.csv").exists()
        runs = [e for e in daemon.audit_events() if e["action"] == "lifecycle.disposal_run"]
        assert "usb: a file system is mounted here" in runs[-1]["details"]
        assert runs[-1]["outcome"] == "failed"
    finally:
        subprocess.run(["umount", str(mounted)], check=True)
    done = json.loads(ok(daemon.vokter("lifecycle", "run", "--json")))[0]
    assert done["state"] == "closed"
    assert (outside / "copy.csv").read_text() == "a;b\n1;2\n"  # never the zone's to judge
