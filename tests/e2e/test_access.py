"""The access list as people meet it: a real vokterd with its fanotify gate, the real vokter,
real Unix users opening real files (A1, A3, S6)."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from tests.support.daemon import RunningDaemon
from tests.support.users import TestUser, UserFactory

PROJECT = "p4711"


def as_user(user: TestUser, script: str, timeout: float = 20) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["runuser", "-u", user.name, "--", "sh", "-c", script],
        capture_output=True, text=True, timeout=timeout, check=False)


def wait_for(predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def start_project(daemon: RunningDaemon, leader: TestUser) -> Path:
    result = daemon.vokter("project", "create", PROJECT, "--title", "Shift work",
                           "--leader", leader.name, "--end-date", "2030-06-30")
    assert result.returncode == 0, result.stderr
    return daemon.zones_dir / PROJECT / "data"


def member_add(daemon: RunningDaemon, by: TestUser, user: TestUser, role: str = "member") -> None:
    result = daemon.vokter("member", "add", PROJECT, user.name, "--role", role,
                           "--reason", "works on the cohort", user=by.name)
    assert result.returncode == 0, result.stderr


def test_a1_removed_member_is_denied_on_the_next_open_even_in_a_running_shell(
    daemon: RunningDaemon, unix_users: UserFactory
) -> None:
    leader, alice = unix_users.create("vkl"), unix_users.create()
    data = start_project(daemon, leader)
    member_add(daemon, leader, alice)
    assert as_user(alice, f"mkdir -p '{data}/a/b' && echo 1 > '{data}/a/b/late.csv'"
                   ).returncode == 0
    # A shell of alice's already sits inside the zone and reads whenever the fifo says so.
    fifo = daemon.root / "go.fifo"
    os.mkfifo(fifo, 0o666)
    out = daemon.root / "shell.out"
    out.touch()
    out.chmod(0o666)
    shell = subprocess.Popen(
        ["runuser", "-u", alice.name, "--", "sh", "-c",
         f"cd '{data}/a/b' && while read line < '{fifo}'; do "
         f"if cat late.csv >/dev/null 2>&1; then echo read >> '{out}'; "
         f"else echo denied >> '{out}'; fi; done"])
    try:
        with open(fifo, "w") as go:
            go.write("1\n")
        assert wait_for(lambda: out.read_text() == "read\n")
        removed = daemon.vokter("member", "remove", PROJECT, alice.name, "--reason",
                                "left the project", user=leader.name)
        assert removed.returncode == 0, removed.stderr
        time.sleep(1.0)
        with open(fifo, "w") as go:
            go.write("2\n")
        assert wait_for(lambda: out.read_text() == "read\ndenied\n"), out.read_text()
    finally:
        shell.kill()
        shell.wait()
    denied = as_user(alice, f"cat '{data}/a/b/late.csv'")
    assert denied.returncode != 0
    assert ("Permission denied" in denied.stderr or "not permitted" in denied.stderr)
    offboard = next(e for e in daemon.audit_events() if e["action"] == "member.offboard")
    # alice's late.csv went to the leader (A3)
    assert json.loads(offboard["details"])["handed_over"] >= 1


def test_a1_the_acls_hold_while_the_daemon_is_stopped(
    daemon: RunningDaemon, unix_users: UserFactory
) -> None:
    leader, alice, outsider = unix_users.create("vkl"), unix_users.create(), unix_users.create()
    data = start_project(daemon, leader)
    member_add(daemon, leader, alice)
    (data / "cohort.csv").write_text("id\n1\n")
    assert as_user(alice, f"cat '{data}/cohort.csv'").returncode == 0
    assert daemon.stop() == 0
    assert as_user(alice, f"cat '{data}/cohort.csv'").returncode == 0
    assert as_user(alice, f"echo 2 >> '{data}/cohort.csv'").returncode == 0
    assert as_user(outsider, f"cat '{data}/cohort.csv'").returncode != 0
    assert as_user(leader, f"cat '{data}/cohort.csv'").returncode == 0


def test_a1_drift_is_repaired_within_seconds_and_names_the_process(
    daemon: RunningDaemon, unix_users: UserFactory
) -> None:
    leader = unix_users.create("vkl")
    data = start_project(daemon, leader)
    target = data / "cohort.csv"
    assert as_user(leader, f"echo 1 > '{target}'").returncode == 0
    chmod = subprocess.run(["chmod", "o+r", str(target)], check=True)
    assert chmod.returncode == 0
    assert wait_for(lambda: target.stat().st_mode & 0o007 == 0), oct(target.stat().st_mode)
    assert wait_for(lambda: any(e["action"] == "access.drift" for e in daemon.audit_events()))
    event = next(e for e in daemon.audit_events() if e["action"] == "access.drift")
    assert event["outcome"] == "violation" and event["rule"] == "A1"
    details = json.loads(event["details"])
    assert details["path"] == str(target)
    assert "o::r--" in details["found"] and "o::---" in details["set"]
    # The kernel always reports the pid; the program is read from /proc at once, which a
    # process as short-lived as chmod may already have left.
    assert details["pid"] > 0
    assert details["program"] in {"chmod", "unknown (process ended)"}


def test_member_commands_as_a_user_meets_them(
    daemon: RunningDaemon, unix_users: UserFactory
) -> None:
    leader, alice, kari = unix_users.create("vkl"), unix_users.create(), unix_users.create()
    start_project(daemon, leader)
    member_add(daemon, leader, alice)
    s6 = daemon.vokter("member", "add", PROJECT, alice.name, "--role", "key_custodian",
                       "--reason", "keeps the key", user=leader.name)
    assert s6.returncode == 1 and "S6" in s6.stderr and len(s6.stderr.strip().splitlines()) <= 2
    member_add(daemon, leader, kari, role="key_custodian")
    listed = json.loads(daemon.vokter("member", "list", PROJECT, "--json",
                                      user=alice.name).stdout)
    assert {(m["user"], m["role"]) for m in listed} == {
        (leader.name, "leader"), (alice.name, "member"), (kari.name, "key_custodian")}
    status = json.loads(daemon.vokter("status", "--json").stdout)
    assert any("access gate: fanotify" in w for w in status["watchers"])
