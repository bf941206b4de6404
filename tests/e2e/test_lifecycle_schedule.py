"""The project-end schedule against a running daemon whose date a test sets (L1, L3, L8): a
project walked from creation past its end in seconds, a daemon that was down on the day,
notices sent once."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.e2e.test_access import as_user, member_add, wait_for
from tests.support.daemon import RunningDaemon, ok, one_line_failure
from tests.support.drill import PROJECT, create_project, set_clock
from tests.support.users import UserFactory


def state_of(daemon: RunningDaemon) -> str:
    shown = json.loads(ok(daemon.vokter("project", "show", PROJECT, "--json")))
    return str(shown["state"])


def test_l1_l8_the_schedule_ends_a_project_on_its_day_and_notifies_the_leader_once(
    dated_daemon: RunningDaemon, unix_users: UserFactory
) -> None:
    daemon = dated_daemon
    leader, member = unix_users.create("vkl"), unix_users.create()
    create_project(daemon, leader.name)
    member_add(daemon, leader, member)
    data = daemon.zones_dir / PROJECT / "data"
    assert as_user(member, f"echo 1 > '{data}/shifts.csv'").returncode == 0

    set_clock(daemon, "2026-03-02T09:00:00+00:00")  # 29 days before the end date
    swept = json.loads(ok(daemon.vokter("lifecycle", "run", "--json")))
    assert swept == [{"project": PROJECT, "state": "active", "applied": [],
                      "notices": ["end:2026-03-31"], "waiting": None, "held": False}]
    again = json.loads(ok(daemon.vokter("lifecycle", "run", PROJECT, "--json")))
    assert again[0]["notices"] == []  # sent once
    notices = [e for e in daemon.audit_events() if e["action"] == "lifecycle.notice"]
    assert len(notices) == 1 and notices[0]["rule"] == "L1"
    told = json.loads(ok(daemon.vokter("notices", "--json", user=leader.name)))
    assert [(n["project"], n["notice"]) for n in told] == [(PROJECT, "end:2026-03-31")]
    assert "ends after 2026-03-31" in told[0]["text"]
    assert json.loads(ok(daemon.vokter("notices", "--json", user=member.name))) == []

    set_clock(daemon, "2026-04-01T09:00:00+00:00")
    ended = json.loads(ok(daemon.vokter("lifecycle", "run", "--json")))
    assert ended[0]["applied"] == ["end"] and ended[0]["state"] == "ended"
    assert wait_for(lambda: as_user(member, f"cat '{data}/shifts.csv'").returncode != 0)
    assert as_user(leader, f"cat '{data}/shifts.csv'").stdout == "1\n"

    set_clock(daemon, "2026-04-14T09:00:00+00:00")  # the last of the 14 days' grace
    assert json.loads(ok(daemon.vokter("lifecycle", "plan", PROJECT, "--json")))["due"] is None
    set_clock(daemon, "2026-04-15T09:00:00+00:00")  # the grace is over: disposal (L2)
    assert json.loads(ok(daemon.vokter("lifecycle", "plan", PROJECT, "--json")))["due"] == (
        "dispose")
    disposed = json.loads(ok(daemon.vokter("lifecycle", "run", "--json")))[0]
    # No anonymisation config: nothing can be shown anonymous, so the data goes (L6).
    assert disposed["applied"] == ["dispose", "anonymised", "close"]
    assert not (data / "shifts.csv").exists()

    refused = one_line_failure(daemon.vokter("lifecycle", "run", user=leader.name))
    assert "only root" in refused


def test_l1_a_daemon_down_on_the_day_ends_the_project_when_it_starts(
    dated_daemon: RunningDaemon, unix_users: UserFactory
) -> None:
    daemon = dated_daemon
    leader = unix_users.create("vkl")
    create_project(daemon, leader.name, "2026-02-28")
    assert daemon.stop() == 0
    set_clock(daemon, "2026-03-05T09:00:00+00:00")  # down over the end date
    daemon.start()
    assert wait_for(lambda: state_of(daemon) == "ended", timeout=20)
    ends = [e for e in daemon.audit_events() if e["action"] == "lifecycle.end"]
    assert len(ends) == 1 and json.loads(ends[0]["details"])["by"] == "schedule"


def test_a_clock_file_others_may_write_keeps_the_daemon_from_starting(
    enclave_root: Path,
) -> None:
    daemon = RunningDaemon(enclave_root, extra_config=f'clock_file = "{enclave_root}/clock"\n')
    set_clock(daemon, "2030-01-01T00:00:00+00:00")
    os.chmod(enclave_root / "clock", 0o666)  # noqa: S103 - the very mistake refused
    with pytest.raises(RuntimeError) as caught:
        daemon.start()
    assert "clock file" in str(caught.value)
