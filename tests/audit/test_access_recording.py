"""The data-access log on the real kernel (A5): real users open real files through ``runuser``,
the real fanotify gate or real inotify sees them, and the records land in a real SQLite trail.

Zone directories are 0777 and files 0666 here: what is tested is the log, not the ACLs.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from agent.access.gate import AccessGate
from agent.access.plan import GateView, ProjectZones, ZoneKind, build_gate_view, plan_access
from agent.access.rules import Grant
from agent.api.dispatch import Caller
from agent.audit.access_recorder import AccessRecorder
from agent.audit.inotify_opens import InotifyOpens
from agent.audit.redact import MASK
from agent.clock import FakeClock
from agent.services import Services
from agent.store import AuditEvent
from tests.api.inprocess import audit_events, make_sqlite_services
from tests.support.users import TestUser, UserFactory

pytestmark = pytest.mark.root

T0 = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
DAEMON = Caller(uid=0, gid=0, pid=os.getpid(), name="vokterd")
CAT = os.path.realpath(shutil.which("cat") or "/bin/cat")
INOTIFY_READER = "vokterd-access-inotify"


def wait_until(predicate: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.02)


def run_as(user: TestUser, script: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["runuser", "-u", user.name, "--", "sh", "-c", script, "sh", *args],
                          capture_output=True, text=True, timeout=60, check=False)


def cat_as(user: TestUser, path: Path, times: int = 1) -> list[int]:
    """``times`` separate ``cat`` processes reading ``path``; their pids."""
    pids = []
    for _ in range(times):
        done = run_as(user, 'echo $$; exec cat "$1" >/dev/null', str(path))
        assert done.returncode == 0, done.stderr
        pids.append(int(done.stdout.split()[0]))
    return pids


def open_dir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(0o777)
    return path


def put(path: Path, text: str = "x\n") -> Path:
    open_dir(path.parent)
    path.write_text(text)
    path.chmod(0o666)
    return path


def make_zones(root: Path, name: str) -> ProjectZones:
    paths = {kind: str(open_dir(root / name / kind.value)) for kind in ZoneKind}
    return ProjectZones(name, None, paths[ZoneKind.DATA], paths[ZoneKind.KEY],
                        paths[ZoneKind.EXPORT], paths[ZoneKind.QUARANTINE])


def view_of(*projects: tuple[ProjectZones, TestUser]) -> GateView:
    return build_gate_view([plan_access(zones, [Grant(user.name, user.uid, "member")])
                            for zones, user in projects])


class ReaderHoldingClock:
    """The test's FakeClock, except that it can hold the inotify reader thread when it asks
    for the time, so that the kernel's queue fills up behind it."""

    def __init__(self, inner: FakeClock) -> None:
        self.inner = inner
        self.released = threading.Event()
        self.released.set()
        self.holding = threading.Event()

    def now(self) -> datetime:
        if threading.current_thread().name == INOTIFY_READER and not self.released.is_set():
            self.holding.set()
            self.released.wait(timeout=60)
        return self.inner.now()

    def monotonic(self) -> float:
        return self.inner.monotonic()


@dataclass
class Rig:
    services: Services
    clock: FakeClock
    zones: ProjectZones
    member: TestUser
    gate: AccessGate | None = None
    recorder: AccessRecorder | None = None
    denied: list[Any] = field(default_factory=list)

    @property
    def data(self) -> Path:
        return Path(self.zones.data)

    def start(self, setting: str = "fanotify", **options: Any) -> AccessRecorder:
        recorder = AccessRecorder(self.services, DAEMON, setting=setting, **options)
        if setting != "inotify":
            self.gate = AccessGate(self.services.gate_view, on_denied=self.denied.append,
                                   on_attrib=lambda path, pid: None,
                                   on_problem=lambda kind, details: None,
                                   on_allowed=recorder.fanotify_open)
            self.gate.start()
        self.recorder = recorder
        recorder.start(gate_running=self.gate is not None)
        return recorder

    def stop(self) -> None:
        if self.gate is not None:
            self.gate.stop()
            self.gate = None
        if self.recorder is not None:
            self.recorder.stop()
            self.recorder = None

    def events(self, action: str | None = None) -> list[AuditEvent]:
        return [e for e in audit_events(self.services) if action is None or e.action == action]


def details(event: AuditEvent) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(event.details)
    return loaded


@pytest.fixture
def rig(tmp_path: Path, enclave_root: Path, unix_users: UserFactory) -> Iterator[Rig]:
    clock = FakeClock(T0)
    services = make_sqlite_services(tmp_path, clock)
    zones = make_zones(enclave_root, "p1234")
    member = unix_users.create("vkm")
    services.gate_view.publish(view_of((zones, member)))
    built = Rig(services, clock, zones, member)
    try:
        yield built
    finally:
        built.stop()
        services.store.close()


# --- fanotify: who, which program, how often ------------------------------------------------


def test_a5_a_member_reading_a_file_again_and_again_is_one_record_naming_who_and_how(
    rig: Rig,
) -> None:
    target = put(rig.data / "cohort.csv")
    rig.start()
    assert rig.services.watchers == ["access log: fanotify (uid, pid, program)"]
    pids = cat_as(rig.member, target, times=5)
    rig.stop()
    [record] = rig.events("file.open")
    assert (record.actor_uid, record.actor, record.target) == (
        rig.member.uid, rig.member.name, str(target))
    assert (record.project_id, record.outcome, record.rule) == ("p1234", "ok", "A5")
    assert details(record) == {
        "pid": pids[0], "program": CAT, "count": 5, "first": "2026-11-23T12:00:00.000000Z",
        "last": "2026-11-23T12:00:00.000000Z", "source": "fanotify", "zone": "data"}
    actions = [e.action for e in rig.events()]
    assert actions == ["access_log.start", "file.open", "access_log.stop"]
    assert details(rig.events("access_log.stop")[0])["opens"] == 5


def test_a5_directories_and_the_daemons_own_opens_are_not_records(rig: Rig) -> None:
    put(rig.data / "sub" / "a.csv")
    rig.start()
    assert run_as(rig.member, 'ls "$1" "$1/sub" >/dev/null', str(rig.data)).returncode == 0
    (rig.data / "sub" / "a.csv").read_text()  # this process is the gate's: the daemon
    rig.stop()
    assert rig.events("file.open") == []


def test_a5_a_closed_window_is_written_while_the_log_runs(rig: Rig) -> None:
    target = put(rig.data / "cohort.csv")
    rig.start()
    cat_as(rig.member, target, times=2)
    rig.clock.advance(timedelta(seconds=60))
    wait_until(lambda: bool(rig.events("file.open")))
    cat_as(rig.member, target)
    rig.stop()
    assert [(details(e)["count"], details(e)["first"]) for e in rig.events("file.open")] == [
        (2, "2026-11-23T12:00:00.000000Z"), (1, "2026-11-23T12:01:00.000000Z")]


def test_a5_an_identity_number_in_a_file_name_never_reaches_the_trail(rig: Rig) -> None:
    target = put(rig.data / "12345678901.csv")
    rig.start()
    cat_as(rig.member, target)
    rig.stop()
    [record] = rig.events("file.open")
    assert record.target == str(rig.data / f"{MASK}.csv")
    assert all("12345678901" not in (e.target or "") + e.details for e in rig.events())


# --- never silently: a full queue, a restart ---------------------------------------------------


def test_a5_a_full_queue_drops_opens_into_a_gap_marker_that_counts_them(rig: Rig) -> None:
    target = put(rig.data / "cohort.csv")
    opens = 12
    # The writer's first act is to mark the start; holding the store's write lock holds it
    # there, so the opens pile up in a queue of four.
    with rig.services.store.write():
        rig.start(capacity=4)
        cat_as(rig.member, target, times=opens)
    rig.stop()
    [gap] = rig.events("access_log.gap")
    [record] = rig.events("file.open")
    assert (gap.outcome, gap.project_id, gap.rule) == ("gap", "p1234", "A5")
    assert details(gap)["reason"] == "overflow" and details(gap)["source"] == "fanotify"
    assert details(record)["count"] == 4
    assert details(gap)["dropped"] == opens - 4
    assert details(gap)["from"] == details(gap)["to"] == "2026-11-23T12:00:00.000000Z"
    assert details(rig.events("access_log.stop")[0])["dropped"] == opens - 4


def test_a5_records_the_database_refuses_become_a_counted_gap_marker(rig: Rig) -> None:
    target = put(rig.data / "cohort.csv")
    rig.start()
    wait_until(lambda: bool(rig.events("access_log.start")))
    database = str(rig.services.store.engine.url.database)
    with sqlite3.connect(database) as db:  # the database refuses every new audit event
        db.executescript(
            "CREATE TABLE refuse (x INTEGER);"
            "INSERT INTO refuse VALUES (1);"
            "CREATE TRIGGER refuse_events BEFORE INSERT ON audit_event "
            "WHEN EXISTS (SELECT 1 FROM refuse) BEGIN SELECT RAISE(ABORT, 'refused'); END;")
    assert rig.recorder is not None
    cat_as(rig.member, target, times=3)
    rig.clock.advance(timedelta(seconds=60))
    wait_until(lambda: rig.recorder is not None and rig.recorder.failed_writes >= 1)
    with sqlite3.connect(database) as db:
        db.execute("DELETE FROM refuse")
    rig.stop()
    assert rig.events("file.open") == []
    [gap] = rig.events("access_log.gap")
    assert (details(gap)["reason"], details(gap)["dropped"]) == ("write_failed", 3)
    assert details(gap)["from"] == "2026-11-23T12:00:00.000000Z"
    assert [e.action for e in rig.events()][-1] == "access_log.stop"


def test_a5_a_restart_marks_the_gap_since_the_previous_stop(rig: Rig) -> None:
    rig.start()
    rig.stop()
    rig.clock.advance(timedelta(minutes=10))
    rig.start()
    rig.stop()
    [gap] = rig.events("access_log.gap")
    assert (gap.project_id, details(gap)["reason"]) == ("p1234", "restart")
    assert (details(gap)["from"], details(gap)["to"]) == (
        "2026-11-23T12:00:00.000000Z", "2026-11-23T12:10:00.000000Z")


def test_a5_fanotify_demanded_without_the_gate_is_said_and_audited(rig: Rig) -> None:
    recorder = AccessRecorder(rig.services, DAEMON, setting="fanotify")
    recorder.start(gate_running=False)
    recorder.stop()
    assert recorder.source is None
    assert rig.services.watchers[-1].startswith("access log: unavailable (")
    [event] = rig.events("access_log.unavailable")
    assert event.outcome == "failed" and details(event)["setting"] == "fanotify"


# --- the inotify fallback ---------------------------------------------------------------------


def test_a5_auto_falls_back_to_inotify_when_the_gate_is_not_running(rig: Rig) -> None:
    target = put(rig.data / "cohort.csv")
    rig.recorder = AccessRecorder(rig.services, DAEMON, setting="auto")
    assert rig.recorder.wants_fanotify
    rig.recorder.start(gate_running=False)  # as when fanotify_init is refused
    assert rig.recorder.source == "inotify"
    assert rig.services.watchers == ["access log: inotify (user unknown)"]
    cat_as(rig.member, target)
    rig.stop()
    [record] = rig.events("file.open")
    assert record.actor == "unknown" and record.target == str(target)


def test_a5_inotify_records_opens_with_the_user_unknown(rig: Rig) -> None:
    target = put(rig.data / "cohort.csv")
    rig.start("inotify")
    assert rig.services.watchers == ["access log: inotify (user unknown)"]
    cat_as(rig.member, target, times=3)
    rig.stop()
    [record] = rig.events("file.open")
    assert (record.actor_uid, record.actor, record.target) == (-1, "unknown", str(target))
    assert details(record) == {
        "pid": None, "program": "unknown", "count": 3, "first": "2026-11-23T12:00:00.000000Z",
        "last": "2026-11-23T12:00:00.000000Z", "source": "inotify", "zone": "data"}


def test_a5_inotify_follows_new_directories_and_new_projects(
    rig: Rig, enclave_root: Path
) -> None:
    recorder = rig.start("inotify")
    assert recorder.source == "inotify"
    assert run_as(rig.member, 'mkdir -p "$1/a/b"', str(rig.data)).returncode == 0
    nested = rig.data / "a" / "b" / "new.csv"
    put(nested)
    second = make_zones(enclave_root, "p2000")
    rig.services.gate_view.publish(view_of((rig.zones, rig.member), (second, rig.member)))
    other = put(Path(second.data) / "x.csv")
    # A directory is watched once the reader has seen it created: wait for that, not a time.
    # Four zones of each project, and a and b.
    wait_until(lambda: recorder.watched_directories == 4 + 2 + 4)
    cat_as(rig.member, nested)
    cat_as(rig.member, other)
    rig.stop()
    assert sorted((e.project_id, e.target) for e in rig.events("file.open")
                  if e.actor == "unknown" and e.target in (str(nested), str(other))) == [
        ("p1234", str(nested)), ("p2000", str(other))]


def test_a5_an_inotify_queue_overflow_leaves_a_gap_marker(rig: Rig) -> None:
    first, second = put(rig.data / "a.csv"), put(rig.data / "b.csv")
    holding = ReaderHoldingClock(rig.clock)
    rig.services.clock = holding
    rig.start("inotify")
    holding.released.clear()
    first.read_text()
    holding.holding.wait(timeout=30)
    # More opens than the kernel queues (fs.inotify.max_queued_events, 16384 by default);
    # alternating two files, so that no two events in a row are merged.
    limit = int(Path("/proc/sys/fs/inotify/max_queued_events").read_text())
    for _ in range(limit // 2 + 100):
        for path in (first, second):
            os.close(os.open(path, os.O_RDONLY))
    holding.released.set()
    rig.stop()
    [gap] = rig.events("access_log.gap")
    assert gap.project_id == "p1234"
    assert details(gap)["reason"] == "kernel_overflow" and details(gap)["dropped"] is None
    assert sum(details(e)["count"] for e in rig.events("file.open")) < limit + 201


def test_a5_inotify_follows_a_directory_renamed_in_a_zone_and_drops_one_moved_out(
    rig: Rig, enclave_root: Path
) -> None:
    opened: list[str] = []
    source = InotifyOpens(rig.services.gate_view, on_open=lambda path, zone: opened.append(path),
                          on_overflow=lambda: None, on_problem=lambda kind, details: None)
    inner = put(rig.data / "a" / "b" / "f.csv")
    sentinel = put(rig.data / "sentinel.csv")
    source.start()
    try:
        def read_then_sentinel(path: Path) -> None:
            # Events arrive in order: once the sentinel's open is seen, so is what came before.
            count = opened.count(str(sentinel))
            cat_as(rig.member, path)
            cat_as(rig.member, sentinel)
            wait_until(lambda: opened.count(str(sentinel)) > count)

        read_then_sentinel(inner)
        os.rename(rig.data / "a", rig.data / "c")
        read_then_sentinel(rig.data / "c" / "b" / "f.csv")
        outside = enclave_root / "outside"
        os.rename(rig.data / "c", outside)
        read_then_sentinel(outside / "b" / "f.csv")
    finally:
        source.stop()
    assert [p for p in opened if p != str(sentinel)] == [
        str(inner), str(rig.data / "c" / "b" / "f.csv")]
