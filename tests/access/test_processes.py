"""Rule A3 (offboarding): a removed member's running processes that still hold project files are
found, and ended on request. Real users, real processes, real /proc; nothing mocked.

A process started as ``runuser -u USER -- sh -c '...; sleep 30'`` is two processes of USER (dash
does not exec the last command): the shell and its sleep child, and both hold what the shell
opened or entered.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

import pytest

from agent.access.processes import ProcessHold, find_holders, terminate
from tests.support.users import TestUser as User
from tests.support.users import UserFactory

pytestmark = pytest.mark.root


@dataclass(frozen=True)
class Zones:
    data: Path  # the project's data zone
    file: Path  # a file in it
    sibling_file: Path  # <zones>/p1/data2/file: shares a string prefix, not a path component
    outside_file: Path


@pytest.fixture
def zones(enclave_root: Path) -> Zones:
    """Directories and files every test user may read (0755/0644)."""
    data = enclave_root / "zones" / "p1" / "data"
    sibling = enclave_root / "zones" / "p1" / "data2"
    outside = enclave_root / "elsewhere"
    for directory in (data, sibling, outside):
        directory.mkdir(parents=True)
    for directory in (enclave_root / "zones", enclave_root / "zones" / "p1", data, sibling,
                      outside):
        directory.chmod(0o755)
    made = Zones(data, data / "cohort.csv", sibling / "cohort.csv", outside / "notes.txt")
    for path in (made.file, made.sibling_file, made.outside_file):
        path.write_text("id,age\n1,40\n")
        path.chmod(0o644)
    return made


Spawn = Callable[[User, str], subprocess.Popen[bytes]]


@pytest.fixture
def spawn() -> Iterator[Spawn]:
    """Start ``sh -c SCRIPT`` as a user; every process started is killed and reaped afterwards."""
    started: list[subprocess.Popen[bytes]] = []
    users: list[User] = []

    def start(user: User, script: str) -> subprocess.Popen[bytes]:
        process = subprocess.Popen(["runuser", "-u", user.name, "--", "sh", "-c", script],
                                   start_new_session=True)
        started.append(process)
        users.append(user)
        return process

    try:
        yield start
    finally:
        for process in started:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
        deadline = time.monotonic() + 10
        while any(_user_pids(user) for user in users) and time.monotonic() < deadline:
            time.sleep(0.02)


def _user_pids(user: User) -> set[int]:
    """The user's running processes. Zombies are left out: they hold no files, and killed
    orphans may wait a while for pid 1 to reap them (uids are reused by later test users)."""
    found = subprocess.run(["pgrep", "-u", str(user.uid)], capture_output=True, text=True)
    return {int(pid) for pid in found.stdout.split() if _alive(int(pid))}


def _wait_for_holds(user: User, roots: list[str], count: int) -> list[ProcessHold]:
    """Scan until ``count`` processes of ``user`` hold something (they take a moment to start)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        holds = find_holders(user.uid, roots)
        if len(holds) >= count:
            return holds
        time.sleep(0.05)
    raise AssertionError(f"expected {count} holders of {roots}, found {holds}")


def _wait_for_pids(user: User, count: int) -> set[int]:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        pids = _user_pids(user)
        if len(pids) >= count:
            time.sleep(0.2)  # let the shell reach its sleep
            return pids
        time.sleep(0.05)
    raise AssertionError(f"{user.name} did not start {count} processes")


def _alive(pid: int) -> bool:
    """Running, not merely a zombie waiting to be reaped."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):  # gone before the open, or before the read
        return False


def test_a3_an_open_file_of_the_user_is_found_with_program_and_path(
    unix_users: UserFactory, zones: Zones, spawn: Spawn
) -> None:
    alice = unix_users.create()
    spawn(alice, f"exec 3<{zones.file}; sleep 30")
    holds = _wait_for_holds(alice, [str(zones.data)], 2)
    assert sorted(hold.program for hold in holds) == ["sh", "sleep"]
    for hold in holds:
        assert hold.paths == (str(zones.file),)
        assert (hold.uid, hold.user) == (alice.uid, alice.name)
    assert {hold.pid for hold in holds} == _user_pids(alice)


def test_a3_a_working_directory_in_a_zone_is_found_and_marked_cwd(
    unix_users: UserFactory, zones: Zones, spawn: Spawn
) -> None:
    alice = unix_users.create()
    inner = zones.data / "sub"
    inner.mkdir()
    inner.chmod(0o755)
    spawn(alice, f"cd {inner} && sleep 30")
    holds = _wait_for_holds(alice, [str(zones.data)], 2)
    assert sorted(hold.program for hold in holds) == ["sh", "sleep"]
    assert all(hold.paths == (f"cwd:{inner}",) for hold in holds)


def test_a3_a_file_mapped_into_memory_after_its_descriptor_closed_is_found(
    unix_users: UserFactory, zones: Zones, spawn: Spawn
) -> None:
    alice = unix_users.create()
    # mmap keeps a duplicate descriptor of its own: closerange closes that one too.
    script = ("import mmap, os, time\n"
              f"f = open({str(zones.file)!r}, 'rb')\n"
              "m = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)\n"
              "f.close()\n"
              "os.closerange(3, 1024)\n"
              "time.sleep(30)\n")
    spawn(alice, f"exec /usr/bin/python3 -c \"{script}\"")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        holds = find_holders(alice.uid, [str(zones.data)])
        if holds and f"mmap:{zones.file}" in holds[0].paths:
            break
        time.sleep(0.05)
    assert [(hold.program, hold.paths) for hold in holds] == [
        ("python3", (f"mmap:{zones.file}",))
    ]


def test_a3_other_users_processes_are_ignored(
    unix_users: UserFactory, zones: Zones, spawn: Spawn
) -> None:
    alice, bob = unix_users.create(), unix_users.create()
    spawn(bob, f"exec 3<{zones.file}; sleep 30")
    bob_holds = _wait_for_holds(bob, [str(zones.data)], 2)
    assert find_holders(alice.uid, [str(zones.data)]) == []
    spawn(alice, f"exec 3<{zones.file}; sleep 30")
    alice_holds = _wait_for_holds(alice, [str(zones.data)], 2)
    assert {hold.pid for hold in alice_holds}.isdisjoint(hold.pid for hold in bob_holds)
    assert {hold.pid for hold in alice_holds} == _user_pids(alice)


def test_a3_a_process_acting_as_the_user_only_by_effective_uid_is_found(
    unix_users: UserFactory, zones: Zones
) -> None:
    """Real uid root, effective uid alice: the files it opens are opened as alice."""
    alice = unix_users.create()
    # Not through sh: dash resets its effective uid to the real one when they differ.
    process = subprocess.Popen(
        ["setpriv", f"--euid={alice.uid}", "--", "/usr/bin/python3", "-c",
         f"import time; f = open({str(zones.file)!r}); time.sleep(30)"]
    )
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            holds = find_holders(alice.uid, [str(zones.data)])
            if holds:
                break
            time.sleep(0.05)
        assert [(hold.pid, hold.program, hold.paths) for hold in holds] == [
            (process.pid, "python3", (str(zones.file),))
        ]
    finally:
        process.kill()
        process.wait(timeout=10)


def test_a3_paths_outside_the_zones_are_ignored_including_a_sibling_sharing_a_prefix(
    unix_users: UserFactory, zones: Zones, spawn: Spawn
) -> None:
    alice = unix_users.create()
    spawn(alice, f"exec 3<{zones.sibling_file} 4<{zones.outside_file}; "
                 f"cd {zones.sibling_file.parent} && sleep 30")
    _wait_for_pids(alice, 2)
    assert find_holders(alice.uid, [str(zones.data)]) == []
    # The same processes are found once their directory is a zone: the scan did see them.
    assert len(find_holders(alice.uid, [str(zones.sibling_file.parent)])) == 2
    assert find_holders(alice.uid, []) == []


def test_a3_zone_roots_given_through_a_symlink_still_match(
    unix_users: UserFactory, zones: Zones, spawn: Spawn, enclave_root: Path
) -> None:
    alice = unix_users.create()
    link = enclave_root / "data-link"
    link.symlink_to(zones.data)
    spawn(alice, f"exec 3<{zones.file}; sleep 30")
    assert len(_wait_for_holds(alice, [str(link)], 2)) == 2


def test_a3_terminate_ends_the_holders_on_sigterm(
    unix_users: UserFactory, zones: Zones, spawn: Spawn
) -> None:
    alice = unix_users.create()
    spawn(alice, f"exec 3<{zones.file}; sleep 30")
    spawn(alice, f"cd {zones.data} && sleep 30")
    holds = _wait_for_holds(alice, [str(zones.data)], 4)
    started = time.monotonic()
    gone = terminate(holds, grace=5.0)
    assert time.monotonic() - started < 4.0  # SIGTERM sufficed: no wait for the grace
    assert gone == sorted(hold.pid for hold in holds)
    assert not any(_alive(hold.pid) for hold in holds)
    assert find_holders(alice.uid, [str(zones.data)]) == []


def test_a3_a_process_that_ignores_sigterm_is_killed_after_the_grace(
    unix_users: UserFactory, zones: Zones, spawn: Spawn
) -> None:
    alice = unix_users.create()
    spawn(alice, f"trap '' TERM; exec 3<{zones.file}; sleep 30")
    holds = _wait_for_holds(alice, [str(zones.data)], 2)
    started = time.monotonic()
    gone = terminate(holds, grace=0.5)
    waited = time.monotonic() - started
    assert 0.5 <= waited < 3.0
    assert gone == sorted(hold.pid for hold in holds)
    assert not any(_alive(hold.pid) for hold in holds)


def test_a3_the_grace_is_measured_on_the_injected_clock(
    unix_users: UserFactory, zones: Zones, spawn: Spawn
) -> None:
    """A clock that jumps a minute per reading ends a one-minute grace at once."""
    alice = unix_users.create()
    spawn(alice, f"trap '' TERM; exec 3<{zones.file}; sleep 30")
    holds = _wait_for_holds(alice, [str(zones.data)], 2)
    readings = iter(range(0, 10**6, 60))
    started = time.monotonic()
    gone = terminate(holds, grace=60.0, clock=lambda: float(next(readings)), kill_wait=600.0)
    assert time.monotonic() - started < 3.0
    # kill_wait also runs on the jumping clock: the killed processes may need a last look.
    assert set(gone) <= {hold.pid for hold in holds}
    assert not any(_alive(hold.pid) for hold in holds if hold.pid in gone)


def test_a3_a_pid_now_run_by_another_user_is_not_signalled(
    unix_users: UserFactory, zones: Zones, spawn: Spawn
) -> None:
    """As after pid reuse: the hold names alice, the pid is bob's; bob's process must live."""
    alice, bob = unix_users.create(), unix_users.create()
    spawn(bob, f"exec 3<{zones.file}; sleep 30")
    bob_holds = _wait_for_holds(bob, [str(zones.data)], 2)
    stale = [ProcessHold(hold.pid, alice.uid, alice.name, hold.program, hold.paths)
             for hold in bob_holds]
    assert terminate(stale, grace=0.2) == []
    time.sleep(0.2)
    assert all(_alive(hold.pid) for hold in bob_holds)


def test_a3_a_process_already_gone_is_reported_gone(
    unix_users: UserFactory, zones: Zones, spawn: Spawn
) -> None:
    alice = unix_users.create()
    spawn(alice, f"exec 3<{zones.file}; sleep 30")
    holds = _wait_for_holds(alice, [str(zones.data)], 2)
    for hold in holds:
        os.kill(hold.pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while any(_alive(hold.pid) for hold in holds) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert terminate(holds, grace=0.2) == sorted(hold.pid for hold in holds)


def test_a3_terminate_never_signals_its_own_process(zones: Zones) -> None:
    received: list[int] = []

    def record(signum: int, _frame: FrameType | None) -> None:
        received.append(signum)

    previous = signal.signal(signal.SIGTERM, record)
    try:
        own = ProcessHold(os.getpid(), os.getuid(), "root", "python", (str(zones.file),))
        assert terminate([own], grace=0.2) == []
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert received == []
