"""The data-access log as an auditor meets it (A5): a real vokterd, a project made with the real
vokter, real users opening real files, and the trail read from the daemon's database."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
from pathlib import Path
from typing import Any

from tests.support.daemon import RunningDaemon
from tests.support.users import TestUser, UserFactory

PROJECT = "p4711"
CAT = os.path.realpath(shutil.which("cat") or "/bin/cat")


def as_user(user: TestUser, script: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["runuser", "-u", user.name, "--", "sh", "-c", script, "sh", *args],
                          capture_output=True, text=True, timeout=60, check=False)


def project_with_member(daemon: RunningDaemon, leader: TestUser, member: TestUser) -> Path:
    created = daemon.vokter("project", "create", PROJECT, "--title", "Shift work",
                            "--leader", leader.name, "--end-date", "2030-06-30")
    assert created.returncode == 0, created.stderr
    added = daemon.vokter("member", "add", PROJECT, member.name, "--role", "member",
                          "--reason", "works on the cohort", user=leader.name)
    assert added.returncode == 0, added.stderr
    return daemon.zones_dir / PROJECT / "data"


def read_times(user: TestUser, path: Path, times: int) -> None:
    for _ in range(times):
        done = as_user(user, 'cat "$1" >/dev/null', str(path))
        assert done.returncode == 0, done.stderr


def watchers(daemon: RunningDaemon) -> list[str]:
    status = daemon.vokter("status", "--json")
    assert status.returncode == 0, status.stderr
    listed: list[str] = json.loads(status.stdout)["watchers"]
    return listed


def events(daemon: RunningDaemon, action: str) -> list[dict[str, Any]]:
    return [{**e, "details": json.loads(e["details"])} for e in daemon.audit_events()
            if e["action"] == action]


def test_a5_a_member_reading_a_file_five_times_is_one_record_with_who_and_which_program(
    daemon: RunningDaemon, unix_users: UserFactory
) -> None:
    leader, alice = unix_users.create("vkl"), unix_users.create()
    data = project_with_member(daemon, leader, alice)
    cohort = data / "cohort.csv"
    assert as_user(alice, 'echo "id,shift" > "$1"', str(cohort)).returncode == 0
    secret = data / "12345678901.csv"
    assert as_user(alice, 'echo 1 > "$1"', str(secret)).returncode == 0
    assert "access log: fanotify (uid, pid, program)" in watchers(daemon)
    read_times(alice, cohort, 5)
    read_times(alice, secret, 1)
    assert daemon.stop() == 0  # the stop writes out every window still open
    [record] = [e for e in events(daemon, "file.open")
                if e["target"] == str(cohort) and e["details"]["program"] == CAT]
    assert (record["actor_uid"], record["actor"], record["project_id"]) == (
        alice.uid, alice.name, PROJECT)
    assert record["outcome"] == "ok"
    assert record["details"]["count"] >= 5
    assert record["details"]["pid"] > 0 and record["details"]["zone"] == "data"
    assert record["details"]["source"] == "fanotify"
    masked = [e for e in events(daemon, "file.open") if e["details"]["program"] == CAT
              and e["target"] == str(data / "[id-number].csv")]
    assert len(masked) == 1 and masked[0]["actor"] == alice.name
    trail = json.dumps(daemon.audit_events())
    assert "12345678901" not in trail
    assert "12345678901" not in daemon.log_path.read_text()  # nor in the SIEM feed


def test_a5_a_restart_and_a_crash_each_leave_a_gap_marker(
    daemon: RunningDaemon, unix_users: UserFactory
) -> None:
    leader, alice = unix_users.create("vkl"), unix_users.create()
    project_with_member(daemon, leader, alice)
    assert daemon.stop() == 0
    [stopped] = events(daemon, "access_log.stop")
    daemon.start()
    [restart] = [e for e in events(daemon, "access_log.gap") if e["project_id"] == PROJECT]
    assert restart["outcome"] == "gap"
    assert restart["details"]["reason"] == "restart"
    # SQLite keeps naive UTC with microseconds; the marker spells it as every audit time.
    assert restart["details"]["from"] == stopped["time"].replace(" ", "T") + "Z"
    # A crash leaves no access_log.stop: the next start says the log ended uncleanly.
    assert daemon.process is not None
    daemon.process.send_signal(signal.SIGKILL)
    daemon.process.wait(timeout=30)
    daemon.start()
    gaps = [e for e in events(daemon, "access_log.gap") if e["project_id"] == PROJECT]
    assert [g["details"]["reason"] for g in gaps] == ["restart", "unclean_stop"]


def test_a5_with_inotify_opens_are_recorded_as_by_an_unknown_user(
    enclave_root: Path, unix_users: UserFactory
) -> None:
    daemon = RunningDaemon(enclave_root, extra_config='access_log_source = "inotify"\n')
    daemon.start()
    try:
        leader, alice = unix_users.create("vkl"), unix_users.create()
        data = project_with_member(daemon, leader, alice)
        cohort = data / "cohort.csv"
        assert as_user(alice, 'echo "id,shift" > "$1"', str(cohort)).returncode == 0
        current = watchers(daemon)
        assert "access log: inotify (user unknown)" in current
        assert any(w.startswith("access gate: fanotify") for w in current)  # still enforced
        read_times(alice, cohort, 3)
    finally:
        assert daemon.stop() == 0
    [record] = [e for e in events(daemon, "file.open") if e["target"] == str(cohort)]
    assert (record["actor_uid"], record["actor"]) == (-1, "unknown")
    assert record["details"]["program"] == "unknown" and record["details"]["pid"] is None
    assert record["details"]["source"] == "inotify"
    assert record["details"]["count"] >= 3
