"""S2, the pure part: reading mountinfo and deciding which mounts are portable media."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from agent.storage.findings import Response
from agent.storage.mounts import (
    DeviceFacts,
    MediumWalk,
    Mount,
    enclave_storage_on,
    parse_mountinfo,
    parse_mountinfo_line,
    policy_mount_point_of,
    portable_findings,
    project_file_finding,
    with_walk,
)

POINTS = ("/media", "/run/media", "/mnt")


def mount_line(mount_id: int, point: str, fstype: str = "ext4", device: str = "8:17",
               source: str = "/dev/sdb1", parent: int = 1) -> str:
    return f"{mount_id} {parent} {device} / {point} rw,relatime shared:7 - {fstype} {source} rw"


def mounts(*lines: str) -> tuple[Mount, ...]:
    return parse_mountinfo("\n".join(lines) + "\n")


# --- parse_mountinfo ----------------------------------------------------------------------------


def test_s2_parse_mountinfo_reads_the_hosts_own_table_as_findmnt_does() -> None:
    """findmnt(8) is an independent reader of the same file: both must agree on every mount
    they both saw (other tests may mount and unmount in between)."""
    parsed = {m.mount_id: m for m in parse_mountinfo(Path("/proc/self/mountinfo").read_text())}
    listing = subprocess.run(
        ["findmnt", "--json", "--list", "-o", "ID,PARENT,MAJ:MIN,TARGET,FSTYPE,SOURCE"],
        capture_output=True, text=True, check=True)
    oracle = {int(row["id"]): row for row in json.loads(listing.stdout)["filesystems"]}
    common = parsed.keys() & oracle.keys()
    assert len(common) >= len(oracle) // 2 > 0
    for mount_id in common:
        mount, row = parsed[mount_id], oracle[mount_id]
        assert mount.parent_id == int(row["parent"])
        assert f"{mount.major}:{mount.minor}" == row["maj:min"]
        assert mount.mount_point == row["target"]
        assert mount.fstype == row["fstype"]
    assert {"/", "/proc", "/sys"} <= {m.mount_point for m in parsed.values()}
    assert next(m for m in parsed.values() if m.mount_point == "/proc").fstype == "proc"


def test_s2_parse_mountinfo_decodes_escaped_paths_and_keeps_optional_fields() -> None:
    line = (r"36 35 98:0 /sub\134dir /mnt/my\040stick\011tab rw,noatime master:1 shared:4 "
            r"- ext3 /dev/with\040space rw,errors=continue")
    mount = parse_mountinfo_line(line)
    assert mount == Mount(
        mount_id=36, parent_id=35, major=98, minor=0, root="/sub\\dir",
        mount_point="/mnt/my stick\ttab", mount_options="rw,noatime",
        optional_fields=("master:1", "shared:4"), fstype="ext3",
        source="/dev/with space", super_options="rw,errors=continue")
    assert mount.device == (98, 0)


def test_s2_parse_mountinfo_without_optional_fields_finds_the_separator() -> None:
    mount = parse_mountinfo_line("25 24 0:23 / /dev/shm rw,relatime - tmpfs tmpfs rw,size=64k")
    assert (mount.optional_fields, mount.fstype, mount.source) == ((), "tmpfs", "tmpfs")
    # a mount point named "-" is a path, not the separator
    odd = parse_mountinfo_line("40 1 0:50 / - rw - tmpfs none rw")
    assert (odd.mount_point, odd.fstype, odd.source) == ("-", "tmpfs", "none")


@pytest.mark.parametrize("line", [
    "36 35 98:0 / /mnt rw,noatime ext3 /dev/sdb rw",  # no separator
    "36 35 98:0 / /mnt rw - ext3",                      # ends after the type
    "x 35 98:0 / /mnt rw - ext3 /dev/sdb rw",          # not a mount id
])
def test_s2_parse_mountinfo_refuses_what_is_not_mountinfo(line: str) -> None:
    with pytest.raises(ValueError):
        parse_mountinfo(line)


def test_s2_parse_mountinfo_ignores_blank_lines() -> None:
    assert len(parse_mountinfo("\n" + mount_line(40, "/data") + "\n\n")) == 1


# --- which mounts are media ---------------------------------------------------------------------


def test_s2_a_tmpfs_under_a_policy_mount_point_is_a_medium_with_the_policy_response() -> None:
    found = portable_findings(
        mounts(mount_line(80, "/mnt/usb", fstype="tmpfs", device="0:91", source="tmpfs")),
        {}, POINTS, Response.UNMOUNT)
    assert len(found) == 1
    finding = found[0]
    assert (finding.rule, finding.kind, finding.project, finding.zone, finding.path) == (
        "S2", "portable_medium", None, None, "/mnt/usb")
    assert finding.response is Response.UNMOUNT
    assert finding.fingerprint == "mount:80 dev:0:91"
    assert finding.summary == (
        "tmpfs mounted at /mnt/usb (removable: no, bus: none, under policy mount point /mnt)")
    assert finding.details["policy_mount_point"] == "/mnt"


def test_s2_the_mount_point_itself_counts_and_a_lookalike_name_does_not() -> None:
    table = mounts(mount_line(81, "/media"), mount_line(82, "/mediaserver"),
                   mount_line(83, "/run/media/alice/STICK"), mount_line(84, "/run"))
    assert [f.path for f in portable_findings(table, {}, POINTS, Response.ALERT)] == [
        "/run/media/alice/STICK", "/media"]


def test_s2_the_root_file_system_is_never_a_medium_even_if_a_policy_names_it() -> None:
    table = mounts(mount_line(1, "/", device="254:0", parent=0), mount_line(85, "/srv"))
    assert portable_findings(table, {}, ("/", "/mnt/"), Response.ALERT) == []
    assert policy_mount_point_of("/mnt/x", ("/", "/mnt/")) == "/mnt"


def test_s2_a_removable_or_usb_disk_is_a_medium_wherever_it_is_mounted() -> None:
    table = mounts(mount_line(90, "/data", device="8:17"), mount_line(91, "/scratch",
                   device="179:1", source="/dev/mmcblk0p1"),
                   mount_line(92, "/srv", device="254:16", source="/dev/vdb"),
                   mount_line(93, "/opt", device="8:33", source="/dev/sdc1"))
    facts = {(8, 17): DeviceFacts(removable=False, bus="usb"),
             (179, 1): DeviceFacts(removable=True, bus=None),
             (254, 16): DeviceFacts(removable=False, bus="virtio"),
             (8, 33): DeviceFacts(removable=False, bus="thunderbolt")}
    found = {f.path: f for f in portable_findings(table, facts, POINTS, Response.ALERT)}
    assert set(found) == {"/data", "/scratch", "/opt"}
    assert found["/data"].summary == "ext4 mounted at /data (removable: no, bus: usb)"
    assert found["/scratch"].summary == "ext4 mounted at /scratch (removable: yes, bus: none)"
    assert found["/data"].details["policy_mount_point"] is None


def test_s2_pseudo_file_systems_outside_the_mount_points_are_never_media() -> None:
    table = mounts(mount_line(22, "/proc", fstype="proc", device="0:21", source="proc"),
                   mount_line(24, "/dev", fstype="devtmpfs", device="0:6", source="devtmpfs"),
                   mount_line(26, "/dev/pts", fstype="devpts", device="0:24", source="devpts"),
                   mount_line(41, "/sys/fs/cgroup/unified", fstype="cgroup2", device="0:38"),
                   mount_line(42, "/dev/mqueue", fstype="mqueue", device="0:19"),
                   mount_line(43, "/tmp", fstype="tmpfs", device="0:40", source="tmpfs"))
    # even were sysfs to call the anonymous device removable, a pseudo file system is not media
    facts = {(0, 21): DeviceFacts(removable=True, bus="usb")}
    assert portable_findings(table, facts, POINTS, Response.UNMOUNT) == []


def test_s2_media_inside_media_come_first_so_they_are_unmounted_first() -> None:
    table = mounts(mount_line(50, "/mnt/a"), mount_line(51, "/mnt/a/b/c"),
                   mount_line(52, "/mnt/a/b"))
    assert [f.path for f in portable_findings(table, {}, POINTS, Response.UNMOUNT)] == [
        "/mnt/a/b/c", "/mnt/a/b", "/mnt/a"]


def test_s2_a_remount_of_the_same_device_is_a_new_finding() -> None:
    first = portable_findings(mounts(mount_line(60, "/mnt/usb")), {}, POINTS, Response.ALERT)
    again = portable_findings(mounts(mount_line(61, "/mnt/usb")), {}, POINTS, Response.ALERT)
    assert first[0].fingerprint != again[0].fingerprint


def test_s2_the_search_of_a_medium_is_told_in_its_finding_and_files_get_their_own() -> None:
    medium = portable_findings(mounts(mount_line(70, "/media/stick")), {}, POINTS,
                               Response.UNMOUNT)[0]
    stopped = with_walk(medium, MediumWalk(files_checked=500, matches=1,
                                           stopped_because="limit of 500 files"))
    assert stopped.summary.endswith(
        "; search stopped after 500 files (limit of 500 files), 1 project files found")
    assert stopped.details["search_complete"] is False
    complete = with_walk(medium, MediumWalk(files_checked=3, matches=0))
    assert complete.summary.endswith("; 3 files searched")
    assert complete.details["search_complete"] is True
    on_it = project_file_finding(stopped, project="p1234", path="/media/stick/x.csv",
                                 zone_path="/z/p1234/data/x.csv", fingerprint="70:5:1:2")
    assert (on_it.rule, on_it.kind, on_it.project, on_it.path, on_it.response) == (
        "S2", "project_file_on_medium", "p1234", "/media/stick/x.csv", Response.UNMOUNT)
    assert on_it.summary == (
        "copy of /z/p1234/data/x.csv found on the medium mounted at /media/stick")


def test_s2_a_mount_holding_the_enclaves_own_folders_is_recognised() -> None:
    own = ("/srv/vokter/zones", "/var/lib/vokter", "/mnt/data/zones/p1/key")
    assert enclave_storage_on("/mnt/data", own) == "/mnt/data/zones/p1/key"
    assert enclave_storage_on("/mnt/data/", own) == "/mnt/data/zones/p1/key"
    assert enclave_storage_on("/srv/vokter/zones", own) == "/srv/vokter/zones"
    assert enclave_storage_on("/mnt/dat", own) is None
    assert enclave_storage_on("/media/stick", own) is None
