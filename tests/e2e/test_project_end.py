"""Ending a project as people meet it (L1, L8): a real vokterd, the real vokter, real users
opening real files before and after the end."""

from __future__ import annotations

import json
import os
import subprocess
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from tests.e2e.test_access import as_user, member_add, wait_for
from tests.support.daemon import RunningDaemon, ok, one_line_failure
from tests.support.users import TestUser, UserFactory

PROJECT = "p4711"


def start_project(daemon: RunningDaemon, leader: TestUser, end: date) -> tuple[Path, Path]:
    ok(daemon.vokter("project", "create", PROJECT, "--title", "Shift work", "--leader",
                     leader.name, "--end-date", end.isoformat()))
    return daemon.zones_dir / PROJECT / "data", daemon.zones_dir / PROJECT / "key"


def _children(pid: int) -> list[int]:
    """``pid`` and its descendants (runuser forks the shell that holds the file)."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        try:
            with open(f"/proc/{current}/task/{current}/children") as handle:
                todo.extend(int(child) for child in handle.read().split())
        except OSError:
            pass
    return [p for p in found if os.path.exists(f"/proc/{p}/fd/3")]


def test_l8_after_the_end_members_lose_access_and_the_leader_only_reads(
    daemon: RunningDaemon, unix_users: UserFactory
) -> None:
    leader, member, custodian = (unix_users.create("vkl"), unix_users.create(),
                                 unix_users.create())
    today = datetime.now(UTC).date()  # wall-clock: the daemon's today (UTC)
    data, key = start_project(daemon, leader, today + timedelta(days=400))
    member_add(daemon, leader, member)
    member_add(daemon, leader, custodian, role="key_custodian")
    assert as_user(member, f"echo 1 > '{data}/cohort.csv'").returncode == 0
    assert as_user(custodian, f"echo k > '{key}/linkage.csv'").returncode == 0
    assert as_user(leader, f"echo l > '{data}/leaders.csv'").returncode == 0

    refused = one_line_failure(daemon.vokter("project", "end", PROJECT, "--yes",
                                             user=member.name))
    assert "project.end" in refused
    # A member's job holds a file open across the end: it keeps its descriptor, and the
    # trail names it for the operator (L8).
    holder = subprocess.Popen(["runuser", "-u", member.name, "--", "sh", "-c",
                               f"exec 3< '{data}/cohort.csv'; sleep 60"])
    assert wait_for(lambda: any(
        "cohort.csv" in os.readlink(f"/proc/{pid}/fd/3") for pid in _children(holder.pid)))
    unconfirmed = daemon.vokter("project", "end", PROJECT, user=leader.name)
    assert unconfirmed.returncode == 2 and "pass --yes" in unconfirmed.stderr
    ended = json.loads(ok(daemon.vokter("project", "end", PROJECT, "--yes", "--json",
                                        user=leader.name)))
    assert ended["state"] == "ended"
    assert ended["end_date"] == (today - timedelta(days=1)).isoformat()

    assert wait_for(lambda: as_user(member, f"cat '{data}/cohort.csv'").returncode != 0)
    assert as_user(custodian, f"cat '{key}/linkage.csv'").returncode != 0
    assert as_user(leader, f"cat '{data}/cohort.csv'").stdout == "1\n"
    assert as_user(leader, f"echo 2 >> '{data}/cohort.csv'").returncode != 0
    assert as_user(leader, f"echo 2 > '{data}/new.csv'").returncode != 0
    assert as_user(leader, f"cat '{key}/linkage.csv'").returncode != 0
    # Owner bits count for nothing any more: the files the member, the custodian and the
    # leader made belong to root now; the leader reads their own file but cannot change it.
    assert (data / "cohort.csv").stat().st_uid == 0 and (key / "linkage.csv").stat().st_uid == 0
    assert as_user(leader, f"cat '{data}/leaders.csv'").stdout == "l\n"
    assert as_user(leader, f"echo x >> '{data}/leaders.csv'").returncode != 0
    assert as_user(member, f"chmod 666 '{data}/cohort.csv'").returncode != 0

    held = [e for e in daemon.audit_events() if e["action"] == "lifecycle.open_files"]
    holder.kill()
    holder.wait()
    assert len(held) == 1 and json.loads(held[0]["details"])["processes"][0]["user"] == (
        member.name)
    events = [e for e in daemon.audit_events() if e["action"] == "lifecycle.end"]
    assert len(events) == 1 and events[0]["rule"] == "L1"
    assert json.loads(events[0]["details"])["to"] == "ended"

    again = one_line_failure(daemon.vokter("project", "end", PROJECT, "--yes", user=leader.name))
    assert "already ended" in again and "(L1)" in again


def test_l1_the_plan_says_what_happens_when_and_why(
    daemon: RunningDaemon, unix_users: UserFactory
) -> None:
    leader, member = unix_users.create("vkl"), unix_users.create()
    end = datetime.now(UTC).date() + timedelta(days=100)  # wall-clock: the daemon's today (UTC)
    start_project(daemon, leader, end)
    member_add(daemon, leader, member)
    text = ok(daemon.vokter("lifecycle", "plan", PROJECT, user=leader.name))
    assert f"{PROJECT} is active" in text
    assert f"{(end + timedelta(days=1)).isoformat()}  the project ends" in text
    assert f"{(end + timedelta(days=15)).isoformat()}  disposal (anonymise)" in text
    plan = json.loads(ok(daemon.vokter("lifecycle", "plan", PROJECT, "--json")))
    assert plan["due"] is None and plan["steps"][0]["rule"] == "L1"
    denied = one_line_failure(daemon.vokter("lifecycle", "plan", PROJECT, user=member.name))
    assert "lifecycle.plan" in denied


def test_l1_an_end_in_the_past_or_later_without_rek_is_refused_and_nothing_changes(
    daemon: RunningDaemon, unix_users: UserFactory
) -> None:
    leader = unix_users.create("vkl")
    end = datetime.now(UTC).date() + timedelta(days=100)  # wall-clock: the daemon's today (UTC)
    start_project(daemon, leader, end)
    past = one_line_failure(daemon.vokter("project", "end", PROJECT, "--on", "2020-01-01"))
    assert "in the past" in past
    later = (end + timedelta(days=365)).isoformat()
    refused = one_line_failure(daemon.vokter("project", "end", PROJECT, "--on", later))
    assert "no REK approval" in refused and "(L1)" in refused
    impossible = daemon.vokter("project", "end", PROJECT, "--on", "2027-02-30")
    assert impossible.returncode != 0 and "Traceback" not in impossible.stderr
    shown = json.loads(ok(daemon.vokter("project", "show", PROJECT, "--json")))
    assert shown["end_date"] == end.isoformat() and shown["state"] == "active"
    today = datetime.now(UTC).date()  # wall-clock: the daemon's today (UTC)
    earlier = (today + timedelta(days=10)).isoformat()
    moved = json.loads(ok(daemon.vokter("project", "end", PROJECT, "--on", earlier, "--json")))
    assert moved["state"] == "active"
    assert moved["end_date"] == (today + timedelta(days=9)).isoformat()
