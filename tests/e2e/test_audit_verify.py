"""`vokter audit verify` against a real vokterd (A5): root and a project's auditor verify what
they may, everyone else is refused; each kind of tampering done to the database file while the
daemon was stopped is named at its first event; the whole database put back from an older copy
shows only against a checkpoint the auditor kept."""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.audit.tamper import (
    forged_after,
    insert,
    open_gap,
    point_heads_at_what_is_left,
    sqlite_file,
    swap,
)
from tests.support.daemon import RunningDaemon, ok
from tests.support.users import TestUser, UserFactory

END = "2030-06-30"


@dataclass
class Enclave:
    leader: TestUser
    auditor: TestUser
    member: TestUser
    outsider: TestUser



def populate(daemon: RunningDaemon, unix_users: UserFactory) -> Enclave:
    """Two projects; p1 has an auditor (appointed by root) and a member (added by its leader)."""
    people = Enclave(*(unix_users.create("vkv") for _ in range(4)))
    for project in ("p1", "p2"):
        ok(daemon.vokter("project", "create", project, "--title", f"Study {project}",
                         "--leader", people.leader.name, "--end-date", END))
    ok(daemon.vokter("member", "add", "p1", people.auditor.name, "--role", "auditor",
                     "--reason", "the institution's auditor"))
    ok(daemon.vokter("member", "add", "p1", people.member.name, "--role", "member",
                     "--reason", "analyses the cohort", user=people.leader.name))
    ok(daemon.vokter("member", "add", "p2", people.member.name, "--role", "member",
                     "--reason", "analyses the registry", user=people.leader.name))
    return people


def database(daemon: RunningDaemon) -> Path:
    return daemon.state_dir / "vokter.db"


def verify(daemon: RunningDaemon, *args: str,
           user: str | None = None) -> subprocess.CompletedProcess[str]:
    return daemon.vokter("audit", "verify", *args, user=user)


def assert_damaged(result: subprocess.CompletedProcess[str], kind: str, seq: int) -> None:
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stdout == ""
    [line] = result.stderr.splitlines()
    assert f"the audit trail is damaged at event {seq}: {kind}: " in line, line
    assert "(A5)" in line


def seq_of(daemon: RunningDaemon, action: str, project: str | None = None) -> int:
    return int(next(e["seq"] for e in daemon.audit_events()
                    if e["action"] == action and (project is None or e["project_id"] == project)))


# --- who may verify what -----------------------------------------------------------------------


def test_a5_an_intact_trail_verifies_for_root_and_for_the_projects_auditor(
    daemon: RunningDaemon, unix_users: UserFactory
) -> None:
    people = populate(daemon, unix_users)
    ok(daemon.vokter("audit", "checkpoint"))  # seals everything so far
    whole = ok(verify(daemon))
    count = len(daemon.audit_events()) - 1  # the newest is this verification itself
    assert whole.startswith(f"OK: {count} events verified (trail), last sealed at seq ")
    assert daemon.audit_events()[-1]["action"] == "audit.verify"
    mine = ok(verify(daemon, "--project", "p1", user=people.auditor.name))
    assert mine.startswith("OK: ") and "(project p1), last sealed at seq " in mine
    as_json = json.loads(ok(verify(daemon, "--project", "p1", "--json",
                                   user=people.auditor.name)))
    assert (as_json["ok"], as_json["scope"], as_json["project"]) == (True, "project", "p1")
    assert as_json["count"] == sum(1 for e in daemon.audit_events()
                                   if e["project_id"] == "p1") - 1


def test_a5_an_auditor_verifies_with_the_checkpoint_they_kept_and_read_it_themselves(
    daemon: RunningDaemon, unix_users: UserFactory
) -> None:
    people = populate(daemon, unix_users)
    folder = daemon.root / "auditor"
    folder.mkdir()
    shutil.chown(folder, people.auditor.name)
    kept = folder / "p1-checkpoint.json"
    saved = daemon.vokter("audit", "checkpoint", user=people.auditor.name)
    kept.write_text(ok(saved))
    shutil.chown(kept, people.auditor.name)
    kept.chmod(0o600)
    line = ok(verify(daemon, "--project", "p1", "--checkpoint", str(kept),
                     user=people.auditor.name))
    assert line.startswith("OK: ") and "; your checkpoint (seq " in line and "matches" in line
    # The file is read with the caller's rights: the member cannot read the auditor's copy.
    refused = verify(daemon, "--project", "p1", "--checkpoint", str(kept),
                     user=people.member.name)
    assert refused.returncode == 2 and "is not readable" in refused.stderr


def test_a5_everyone_else_is_refused_and_outsiders_learn_nothing(
    daemon: RunningDaemon, unix_users: UserFactory
) -> None:
    people = populate(daemon, unix_users)
    elsewhere = verify(daemon, "--project", "p2", user=people.auditor.name)
    assert elsewhere.returncode == 1 and "no project p2" in elsewhere.stderr
    whole = verify(daemon, user=people.auditor.name)
    assert whole.returncode == 1 and "only root verifies the whole trail" in whole.stderr
    for someone in (people.leader, people.member):
        refused = verify(daemon, "--project", "p1", user=someone.name)
        assert refused.returncode == 1 and "may not do this (audit.read)" in refused.stderr
    outsider = verify(daemon, "--project", "p1", user=people.outsider.name)
    assert outsider.returncode == 1 and "no project p1" in outsider.stderr
    assert outsider.stdout == ""
    refusals = [e for e in daemon.audit_events()
                if e["action"] == "audit.verify" and e["outcome"] == "refused"]
    assert len(refusals) == 5


# --- tampering while the daemon was stopped ----------------------------------------------------


@pytest.fixture
def stopped(daemon: RunningDaemon, unix_users: UserFactory) -> RunningDaemon:
    """A populated enclave whose daemon has stopped (and sealed everything at stop)."""
    people = populate(daemon, unix_users)
    ok(daemon.vokter("member", "remove", "p2", people.member.name, "--reason", "p1 only"))
    assert daemon.stop() == 0
    return daemon


def test_a5_e2e_a_changed_field_is_named(stopped: RunningDaemon) -> None:
    target = seq_of(stopped, "member.add", "p2")
    with sqlite_file(database(stopped)) as hands:
        hands.run("UPDATE audit_event SET target = 'someone-else' WHERE seq = :seq", seq=target)
    stopped.start()
    assert_damaged(verify(stopped), "changed", target)


def test_a5_e2e_a_deleted_event_is_named_also_in_its_projects_chain(
    stopped: RunningDaemon,
) -> None:
    gone = seq_of(stopped, "member.add", "p1")
    project_seq = next(e["project_seq"] for e in stopped.audit_events() if e["seq"] == gone)
    with sqlite_file(database(stopped)) as hands:
        hands.run("DELETE FROM audit_event WHERE seq = :seq", seq=gone)
    stopped.start()
    assert_damaged(verify(stopped), "deleted", gone)
    mine = verify(stopped, "--project", "p1")
    assert mine.returncode == 1
    assert f"p1's chain is damaged at its event {project_seq}: deleted: " in mine.stderr


def test_a5_e2e_a_forged_event_inserted_is_named(stopped: RunningDaemon) -> None:
    at = seq_of(stopped, "project.create", "p2")
    with sqlite_file(database(stopped)) as hands:
        forged = forged_after(hands, at - 1)
        open_gap(hands, at)
        insert(hands, forged)
        point_heads_at_what_is_left(hands)
    stopped.start()
    assert_damaged(verify(stopped), "inserted", at)


def test_a5_e2e_two_swapped_events_are_named(stopped: RunningDaemon) -> None:
    first = seq_of(stopped, "project.create", "p2")
    with sqlite_file(database(stopped)) as hands:
        swap(hands, first, first + 1)
    stopped.start()
    assert_damaged(verify(stopped), "swapped", first)


def test_a5_e2e_a_tail_cut_with_its_checkpoints_is_caught_by_the_key_store_copy(
    stopped: RunningDaemon,
) -> None:
    cut_from = seq_of(stopped, "member.add", "p1")
    with sqlite_file(database(stopped)) as hands:
        hands.run("DELETE FROM audit_event WHERE seq >= :seq", seq=cut_from)
        hands.run("DELETE FROM audit_checkpoint")
        point_heads_at_what_is_left(hands)
    stopped.start()
    # the first event after the cut was written by the restarted daemon, after the checkpoint
    assert_damaged(verify(stopped), "tail_cut", cut_from)


def test_a5_e2e_the_database_replaced_by_an_older_copy_shows_against_a_kept_checkpoint(
    daemon: RunningDaemon, unix_users: UserFactory
) -> None:
    people = populate(daemon, unix_users)
    assert daemon.stop() == 0
    backup = daemon.root / "backup"
    backup.mkdir()
    for file in daemon.state_dir.glob("vokter.db*"):
        shutil.copy2(file, backup / file.name)
    key_store_copy = daemon.key_store / "audit" / "checkpoint.json"
    shutil.copy2(key_store_copy, backup / "checkpoint.json")
    with sqlite_file(backup / "vokter.db") as hands:
        [(older,)] = hands.run("SELECT max(seq) FROM audit_event")
    daemon.start()
    ok(daemon.vokter("member", "remove", "p1", people.member.name, "--reason", "left"))
    kept = daemon.root / "kept.json"
    kept.write_text(ok(daemon.vokter("audit", "checkpoint", user=people.auditor.name)))
    assert daemon.stop() == 0
    # root puts back the old database and the key store's checkpoint of that time
    for file in daemon.state_dir.glob("vokter.db*"):
        file.unlink()
    for file in backup.glob("vokter.db*"):
        shutil.copy2(file, daemon.state_dir / file.name)
    shutil.copy2(backup / "checkpoint.json", key_store_copy)
    daemon.start()
    assert ok(verify(daemon)).startswith("OK: ")  # nothing the daemon holds tells
    assert_damaged(verify(daemon, "--checkpoint", str(kept)), "rolled_back", older + 1)
    mine = verify(daemon, "--project", "p1", "--checkpoint", str(kept), user=people.auditor.name)
    assert mine.returncode == 1 and ": rolled_back: " in mine.stderr
