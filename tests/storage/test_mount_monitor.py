"""S2 with real mounts: a tmpfs and an ext4 loop device mounted under a policy mount point that
each test makes for itself (/mnt/vokter-test-XXXX), judged by the monitor, unmounted for real,
and searched for project files first. Every mount and loop device is removed afterwards."""

from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import select
from structlog.testing import capture_logs

from agent.api.dispatch import Caller, dispatch
from agent.clock import FakeClock
from agent.operations import OPERATIONS
from agent.policy import default_policy_path
from agent.services import Services
from agent.storage.findings import Response
from agent.storage.mount_monitor import MountMonitor, gather_device_facts, read_device_facts
from agent.storage.mounts import DeviceFacts, parse_mountinfo, portable_findings
from agent.store import AuditEvent, Store
from agent.store.migrate import upgrade
from agent.store.tables import Violation
from tests.support.daemon import RunningDaemon
from tests.support.identity_numbers import some
from tests.support.services import build_services

pytestmark = pytest.mark.root
ROWS = b"lopenr,age,diagnosis\n1,54,E11\n2,61,I10\n3,47,E11\n"


# --- real mounts, always cleaned up -------------------------------------------------------------


def mount_points() -> list[str]:
    return [m.mount_point for m in parse_mountinfo(Path("/proc/self/mountinfo").read_text())]


def unmount_everything_under(root: Path) -> None:
    """Deepest first, lazily, so that nothing a failed test left open keeps a mount alive."""
    for point in sorted((p for p in mount_points() if p.startswith(f"{root}/") or p == str(root)),
                        key=len, reverse=True):
        subprocess.run(["umount", "-l", point], check=False, capture_output=True)


@pytest.fixture
def media_root() -> Iterator[Path]:
    root = Path(tempfile.mkdtemp(prefix="vokter-test-", dir="/mnt"))
    try:
        yield root
    finally:
        unmount_everything_under(root)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def loop_image() -> Iterator[Callable[[Path], str]]:
    """Makes a small ext4 image on a free loop device and mounts it; detaches it afterwards."""
    made: list[tuple[str, Path]] = []
    folder = Path(tempfile.mkdtemp(prefix="vokter-loop-"))

    def mount_at(point: Path) -> str:
        image = folder / f"disk{len(made)}.img"
        with image.open("wb") as file:
            file.truncate(16 << 20)
        device = subprocess.run(["losetup", "-f", "--show", str(image)], check=True,
                                capture_output=True, text=True).stdout.strip()
        made.append((device, image))
        subprocess.run(["mkfs.ext4", "-q", "-F", device], check=True, capture_output=True)
        point.mkdir(parents=True, exist_ok=True)
        subprocess.run(["mount", device, str(point)], check=True, capture_output=True)
        return device

    try:
        yield mount_at
    finally:
        for device, _image in made:
            for mount in parse_mountinfo(Path("/proc/self/mountinfo").read_text()):
                if mount.source == device:
                    subprocess.run(["umount", "-l", mount.mount_point], check=False)
            subprocess.run(["losetup", "-d", device], check=False, capture_output=True)
        shutil.rmtree(folder, ignore_errors=True)


def mount_tmpfs(point: Path) -> None:
    point.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(point)], check=True)


def is_mounted(point: Path) -> bool:
    return str(point) in mount_points()


# --- the daemon's side ---------------------------------------------------------------------------


def media_policy(services: Services, media_root: Path, action: str) -> None:
    """Only this test's folder is a media mount point, so the monitor never judges (or, with
    "unmount", touches) the host's own mounts; the test refuses to run if the host has a
    removable disk mounted that it would unmount."""
    policy = services.policies.current()
    storage = replace(policy.storage, portable_media_action=action,
                      portable_media_mount_points=(str(media_root),))
    services.policies.replace(replace(policy, storage=storage))
    if action == "unmount":
        table = parse_mountinfo(Path("/proc/self/mountinfo").read_text())
        other = portable_findings(table, gather_device_facts(table), (str(media_root),),
                                  Response.UNMOUNT)
        assert [f.path for f in other if not f.path.startswith(str(media_root))] == [], (
            "the host has portable media mounted; this test would unmount them")


def create_project(services: Services, caller: Caller, project: str = "p1234") -> Path:
    request = {"v": 1, "op": "project.create",
               "args": {"project": project, "title": "Sleep cohort", "leader": "root",
                        "end_date": "2030-06-30"}}
    response = dispatch(request, caller, services, OPERATIONS)
    assert response["ok"] is True, response
    return Path(services.config.zones_dir) / project / "data"


def violations(services: Services) -> list[Violation]:
    with services.store.read() as session:
        return list(session.exec(select(Violation).order_by(Violation.id)).all())


def detected_events(services: Services) -> list[AuditEvent]:
    with services.store.read() as session:
        return [e for e in session.exec(select(AuditEvent)).all()
                if e.action == "violation.detected"]


def wait_for(condition: Callable[[], Any], what: str) -> Any:
    """Poll until ``condition`` holds; the deadline only turns a hang into a failure."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    pytest.fail(f"never happened: {what}")


# --- tests ----------------------------------------------------------------------------------------


def test_s2_a_tmpfs_at_a_policy_mount_point_is_a_violation_and_alert_leaves_it_mounted(
    services: Services, root_caller: Caller, media_root: Path
) -> None:
    media_policy(services, media_root, "alert")
    point = media_root / "usb stick"  # a space: mountinfo writes it as \040
    mount_tmpfs(point)
    monitor = MountMonitor(services, root_caller)

    recorded = monitor.check_now()

    [violation] = violations(services)
    assert recorded == [violation.id]
    assert (violation.rule, violation.kind, violation.project_id, violation.path) == (
        "S2", "portable_medium", None, str(point))
    assert (violation.action, violation.action_outcome) == ("alert", "none")
    assert violation.summary.startswith(
        f"tmpfs mounted at {point} (removable: no, bus: none, "
        f"under policy mount point {media_root}); 0 files searched")
    assert [json.loads(e.details)["violation"] for e in detected_events(services)] == [
        violation.id]
    assert is_mounted(point)
    assert monitor.check_now() == []  # judged once while it stays
    assert len(violations(services)) == 1


def test_s2_a_loop_disk_with_unmount_is_unmounted_after_its_project_file_is_found(
    sqlite_services: Services, root_caller: Caller, media_root: Path,
    loop_image: Callable[[Path], str]
) -> None:
    services = sqlite_services
    zone = create_project(services, root_caller)
    (zone / "cohort.csv").write_bytes(ROWS)
    media_policy(services, media_root, "unmount")
    point = media_root / "stick"
    device = loop_image(point)
    (point / "backup").mkdir()
    shutil.copyfile(zone / "cohort.csv", point / "backup" / "c.csv")
    (point / "unrelated.csv").write_bytes(bytes(reversed(ROWS)))
    (point / "link.csv").symlink_to(zone / "cohort.csv")

    recorded = MountMonitor(services, root_caller).check_now()

    assert not is_mounted(point)
    found = violations(services)
    assert sorted(recorded) == sorted(v.id for v in found)
    medium = next(v for v in found if v.kind == "portable_medium")
    assert (medium.path, medium.project_id, medium.action, medium.action_outcome) == (
        str(point), None, "unmount", "done")
    assert medium.action_note == f"unmounted {point}"
    assert f"ext4 mounted at {point}" in medium.summary
    # two files: the link to the zone file is neither searched nor followed
    assert medium.summary.endswith("; 2 files searched, 1 project files found")
    assert os.path.basename(device).startswith("loop")
    [on_medium] = [v for v in found if v.kind == "project_file_on_medium"]
    assert (on_medium.rule, on_medium.project_id, on_medium.path) == (
        "S2", "p1234", str(point / "backup" / "c.csv"))
    assert (on_medium.action, on_medium.action_outcome) == ("unmount", "done")
    assert {e.project_id for e in detected_events(services)} == {None, "p1234"}


def test_s2_a_busy_medium_is_detached_at_once_and_the_note_says_so(
    sqlite_services: Services, root_caller: Caller, media_root: Path
) -> None:
    media_policy(sqlite_services, media_root, "unmount")
    point = media_root / "busy"
    mount_tmpfs(point)
    holder = os.open(point / "open.txt", os.O_CREAT | os.O_WRONLY, 0o600)
    try:
        MountMonitor(sqlite_services, root_caller).check_now()
        assert not is_mounted(point)
        os.write(holder, b"still writable until closed\n")
    finally:
        os.close(holder)
    [medium] = violations(sqlite_services)
    assert medium.action_outcome == "done"
    assert "was busy (files open on it): detached it from the file tree" in medium.action_note


def test_s2_a_disk_holding_the_enclaves_own_zones_is_reported_but_never_unmounted(
    tmp_path: Path, root_caller: Caller, media_root: Path
) -> None:
    """A data disk at /mnt/data sits where media go; unmounting it would take the projects'
    data away. Its zone files are not copies of themselves either."""
    disk = media_root / "data"
    mount_tmpfs(disk)
    store = Store(f"sqlite:///{tmp_path}/v.db")
    upgrade(store.engine)
    try:
        services = build_services(store, FakeClock(datetime(2026, 11, 23, 12, tzinfo=UTC)), disk)
        zone = create_project(services, root_caller)
        (zone / "cohort.csv").write_bytes(ROWS)
        media_policy(services, media_root, "unmount")

        MountMonitor(services, root_caller).check_now()

        assert is_mounted(disk)
        [medium] = violations(services)
        assert (medium.kind, medium.action, medium.action_outcome) == (
            "portable_medium", "unmount", "failed")
        assert medium.action_note.startswith(
            f"not unmounted: the enclave's own {disk}/zones is on it")
    finally:
        store.close()


def test_s2_the_search_of_a_medium_stops_at_its_bound_and_says_so(
    sqlite_services: Services, root_caller: Caller, media_root: Path
) -> None:
    media_policy(sqlite_services, media_root, "alert")
    point = media_root / "big"
    mount_tmpfs(point)
    for number in range(5):
        (point / f"f{number}.txt").write_text(f"file {number}\n")
    MountMonitor(sqlite_services, root_caller, walk_max_files=3).check_now()
    [medium] = violations(sqlite_services)
    assert medium.summary.endswith("; search stopped after 3 files (limit of 3 files)")
    assert '"search_complete": false' in medium.details


def test_s2_mounts_present_at_start_and_mounted_later_are_seen_by_the_thread(
    sqlite_services: Services, root_caller: Caller, media_root: Path
) -> None:
    media_policy(sqlite_services, media_root, "alert")
    mount_tmpfs(media_root / "before")
    monitor = MountMonitor(sqlite_services, root_caller, safety_seconds=3600)
    monitor.start()
    try:
        wait_for(lambda: [v for v in violations(sqlite_services)
                          if v.path == str(media_root / "before")], "the mount made before start")
        # the slow re-read is an hour away: only the mount table's own notice can wake it
        mount_tmpfs(media_root / "after")
        wait_for(lambda: [v for v in violations(sqlite_services)
                          if v.path == str(media_root / "after")], "the mount made while running")
    finally:
        monitor.stop()
    assert len(violations(sqlite_services)) == 2


def test_s2_a_policy_reload_to_unmount_applies_to_a_medium_already_alerted(
    sqlite_services: Services, root_caller: Caller, media_root: Path
) -> None:
    media_policy(sqlite_services, media_root, "alert")
    point = media_root / "stays"
    mount_tmpfs(point)
    monitor = MountMonitor(sqlite_services, root_caller)
    assert len(monitor.check_now()) == 1
    assert is_mounted(point)
    media_policy(sqlite_services, media_root, "unmount")
    monitor.check_now()
    assert not is_mounted(point)


def test_s2_the_thread_survives_a_mount_table_it_cannot_read_and_never_logs_a_number(
    sqlite_services: Services, root_caller: Caller, media_root: Path, tmp_path: Path
) -> None:
    """A table that is not mountinfo makes a check fail; the thread logs it, masked, and goes
    on: once the table reads well, the medium in it is recorded."""
    media_policy(sqlite_services, media_root, "alert")
    number = some(12, 3, 85)
    table = tmp_path / "mountinfo"
    table.write_text(f"{number}x 1 0:1 / /m rw - tmpfs tmpfs rw\n")  # the error quotes it
    monitor = MountMonitor(sqlite_services, root_caller, mountinfo_path=str(table),
                           safety_seconds=0.05)
    with capture_logs() as logs:
        monitor.start()
        try:
            wait_for(lambda: any(r["event"] == "mount_check_failed" for r in logs),
                     "the failed check logged")
            good = f"900 1 0:999 / {media_root}/ghost rw - tmpfs tmpfs rw\n"
            table.write_text(good)
            wait_for(lambda: violations(sqlite_services), "the check after the failure")
        finally:
            monitor.stop()
    assert violations(sqlite_services)[0].path == f"{media_root}/ghost"
    failed = [r for r in logs if r["event"] == "mount_check_failed"]
    assert "[id-number]" in failed[0]["message"]
    assert logs and not any(re.search(number, repr(record)) for record in logs)


def test_s2_sysfs_says_a_usb_partition_or_a_mapper_on_it_is_portable(tmp_path: Path) -> None:
    """A sysfs tree laid out as the kernel lays out a USB stick's partition; the device
    facts come from the partition's disk and the subsystem links up its path."""
    sysfs = tmp_path / "sys"
    usb = sysfs / "devices/pci0000:00/0000:00:14.0/usb1/1-1"
    disk = usb / "1-1:1.0/host2/target2:0:0/2:0:0:0/block/sdb"
    (disk / "sdb1").mkdir(parents=True)
    (disk / "removable").write_text("1\n")
    (disk / "sdb1/removable").write_text("0\n")
    (disk / "sdb1/partition").write_text("1\n")
    (sysfs / "class/block").mkdir(parents=True)
    (sysfs / "bus/usb").mkdir(parents=True)
    (sysfs / "bus/scsi").mkdir(parents=True)
    (disk / "subsystem").symlink_to(sysfs / "class/block")
    (disk / "sdb1/subsystem").symlink_to(sysfs / "class/block")
    (disk.parent.parent / "subsystem").symlink_to(sysfs / "bus/scsi")
    (usb / "subsystem").symlink_to(sysfs / "bus/usb")
    (sysfs / "dev/block").mkdir(parents=True)
    (sysfs / "dev/block/8:17").symlink_to(disk / "sdb1")
    (sysfs / "dev/block/8:16").symlink_to(disk)

    assert read_device_facts(8, 17, str(sysfs)) == DeviceFacts(removable=True, bus="usb")
    assert read_device_facts(8, 16, str(sysfs)) == DeviceFacts(removable=True, bus="usb")
    assert read_device_facts(8, 99, str(sysfs)) is None
    # an encrypted stick opened with cryptsetup: a virtual dm device on the usb partition
    mapper = sysfs / "devices/virtual/block/dm-0"
    (mapper / "slaves").mkdir(parents=True)
    (mapper / "removable").write_text("0\n")
    (mapper / "subsystem").symlink_to(sysfs / "class/block")
    (mapper / "slaves/sdb1").symlink_to(disk / "sdb1")
    (sysfs / "dev/block/253:0").symlink_to(mapper)
    assert read_device_facts(253, 0, str(sysfs)) == DeviceFacts(removable=True, bus="usb")
    (mapper / "slaves/sdb1").unlink()
    assert read_device_facts(253, 0, str(sysfs)) == DeviceFacts(removable=False, bus=None)


def test_s2_sysfs_of_this_host_says_loop_devices_are_not_portable(
    loop_image: Callable[[Path], str], media_root: Path
) -> None:
    device = loop_image(media_root / "disk")
    [mount] = [m for m in parse_mountinfo(Path("/proc/self/mountinfo").read_text())
               if m.source == device]
    assert read_device_facts(mount.major, mount.minor) == DeviceFacts(removable=False, bus=None)
    root = next(m for m in parse_mountinfo(Path("/proc/self/mountinfo").read_text())
                if m.mount_point == "/")
    if root.major != 0:
        facts = read_device_facts(root.major, root.minor)
        assert facts is not None and facts.removable is False


# --- through the running daemon ----------------------------------------------------------------


def media_policy_dir(root: Path, media_root: Path, action: str) -> str:
    """A policies_dir whose default policy puts media at ``media_root`` only."""
    policies = root / "policies"
    policies.mkdir()
    text = default_policy_path().read_text()
    text, actions = re.subn(r'(?m)^portable_media_action = "\w+"',
                            f'portable_media_action = "{action}"', text)
    text, points = re.subn(r"(?m)^portable_media_mount_points = \[[^\]]*\]",
                           f'portable_media_mount_points = ["{media_root}"]', text)
    assert (actions, points) == (1, 1)
    (policies / "default.toml").write_text(text)
    return f'policies_dir = "{policies}"\n'


def stored_violations(daemon: RunningDaemon) -> list[dict[str, Any]]:
    with sqlite3.connect(f"file:{daemon.state_dir / 'vokter.db'}?mode=ro", uri=True) as db:
        db.row_factory = sqlite3.Row
        return [dict(r) for r in db.execute("SELECT * FROM violation ORDER BY id")]


def test_s2_the_running_daemon_unmounts_a_tmpfs_mounted_at_its_media_mount_point(
    enclave_root: Path, media_root: Path, sqlite_services: Services
) -> None:
    media_policy(sqlite_services, media_root, "unmount")  # refuses if the host has media
    daemon = RunningDaemon(enclave_root,
                           extra_config=media_policy_dir(enclave_root, media_root, "unmount"))
    daemon.start()
    try:
        point = media_root / "stick"
        mount_tmpfs(point)
        [row] = wait_for(lambda: [v for v in stored_violations(daemon)
                                  if v["path"] == str(point)], "the medium's violation")
        assert not is_mounted(point)
    finally:
        daemon.stop()
    assert (row["rule"], row["kind"], row["action"], row["action_outcome"]) == (
        "S2", "portable_medium", "unmount", "done")
    detected = [e for e in daemon.audit_events() if e["action"] == "violation.detected"]
    assert [(e["rule"], e["target"], e["actor"]) for e in detected] == [
        ("S2", str(point), "vokterd")]
    assert not [r for r in daemon.log_records() if r.get("event") == "mount_check_failed"]
