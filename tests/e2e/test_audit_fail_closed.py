"""Fail closed (A5), end to end: when vokterd cannot write the audit event of an action, the
action is refused and nothing changes: not the access list, not the ACLs on the zone, not what
the user can open. The trail is made unwritable the way a broken or full database would refuse
it: a trigger in the daemon's own database file, installed while it runs."""

from __future__ import annotations

import sqlite3
import subprocess
from pathlib import Path

from tests.support.daemon import RunningDaemon
from tests.support.users import TestUser, UserFactory


def acl(path: Path) -> str:
    return subprocess.run(["getfacl", "--omit-header", "--numeric", str(path)],
                          capture_output=True, text=True, check=True).stdout


def as_user(user: TestUser, script: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["runuser", "-u", user.name, "--", "sh", "-c", script],
                          capture_output=True, text=True, timeout=20, check=False)


def members(daemon: RunningDaemon) -> list[tuple[str, str]]:
    with sqlite3.connect(f"file:{daemon.state_dir / 'vokter.db'}?mode=ro", uri=True) as db:
        return list(db.execute("SELECT user, role FROM member WHERE revoked_at IS NULL "
                               "ORDER BY id"))


def test_a5_member_add_is_refused_and_changes_nothing_when_its_event_cannot_be_written(
    daemon: RunningDaemon, unix_users: UserFactory
) -> None:
    leader, alice = unix_users.create("vkf"), unix_users.create("vkf")
    created = daemon.vokter("project", "create", "p1", "--title", "Cohort", "--leader",
                            leader.name, "--end-date", "2030-06-30")
    assert created.returncode == 0, created.stderr
    data = daemon.zones_dir / "p1" / "data"
    assert as_user(leader, f"echo 1 > '{data}/cohort.csv'").returncode == 0
    acl_before, members_before = acl(data), members(daemon)
    with sqlite3.connect(daemon.state_dir / "vokter.db") as db:
        db.execute("CREATE TRIGGER audit_down BEFORE INSERT ON audit_event "
                   "BEGIN SELECT RAISE(ABORT, 'disk full'); END")

    added = daemon.vokter("member", "add", "p1", alice.name, "--role", "member", "--reason",
                          "analyses the cohort", user=leader.name)

    assert added.returncode == 1 and added.stdout == ""
    assert "the audit trail cannot be written" in added.stderr
    assert "nothing was changed" in added.stderr
    assert members(daemon) == members_before
    assert acl(data) == acl_before and f"user:{alice.uid}:" not in acl(data)
    denied = as_user(alice, f"cat '{data}/cohort.csv'")
    assert denied.returncode != 0 and "Permission denied" in denied.stderr
    assert not [e for e in daemon.audit_events() if e["target"] == alice.name]
    # The trail back, the same request goes through: the refusal was the trail's doing.
    with sqlite3.connect(daemon.state_dir / "vokter.db") as db:
        db.execute("DROP TRIGGER audit_down")
    again = daemon.vokter("member", "add", "p1", alice.name, "--role", "member", "--reason",
                          "analyses the cohort", user=leader.name)
    assert again.returncode == 0, again.stderr
    assert as_user(alice, f"cat '{data}/cohort.csv'").stdout == "1\n"
