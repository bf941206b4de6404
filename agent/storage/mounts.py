"""S2: which of the host's mounts are portable media, decided from plain values.

The shell reads /proc/self/mountinfo and sysfs; this module turns what they said into findings.
A mount is a medium when it sits at or under one of the policy's mount points (where desktops
and operators put sticks and disks), or when the kernel says its block device, or the disk a
partition belongs to, is removable or hangs off a bus that carries portable devices. The two
tests catch different things: a stick mounted by hand at /data is on the usb bus; a tmpfs or a
loop image at /mnt/usb has no device facts at all but sits where media go.

Nothing here reads a file: the pure contract in pyproject.toml forbids it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from types import MappingProxyType

from agent.storage.findings import Finding, Response

RULE = "S2"
PORTABLE_MEDIUM = "portable_medium"
PROJECT_FILE_ON_MEDIUM = "project_file_on_medium"

#: Buses whose devices are unplugged and carried away; a disk on any of them is a medium.
PORTABLE_BUSES = frozenset({"usb", "mmc", "firewire", "thunderbolt", "memstick"})

#: File systems the kernel makes up: they hold no data anyone could carry away. Outside the
#: policy's mount points they are never media, whatever device number they were given.
PSEUDO_FILESYSTEMS = frozenset({
    "autofs", "binfmt_misc", "bpf", "cgroup", "cgroup2", "configfs", "debugfs", "devpts",
    "devtmpfs", "efivarfs", "fusectl", "hugetlbfs", "mqueue", "nsfs", "proc", "pstore",
    "rpc_pipefs", "securityfs", "selinuxfs", "sysfs", "tracefs",
})

_OCTAL_ESCAPE = re.compile(r"\\([0-7]{3})")


@dataclass(frozen=True, slots=True)
class Mount:
    """One line of mountinfo (proc(5)); paths are decoded, options kept as the kernel wrote
    them."""

    mount_id: int
    parent_id: int
    major: int
    minor: int
    #: The directory of the file system that is mounted here ("/" unless a bind mount).
    root: str
    mount_point: str
    mount_options: str
    #: The optional fields ("shared:1", "master:2"), in order.
    optional_fields: tuple[str, ...]
    fstype: str
    source: str
    super_options: str

    @property
    def device(self) -> tuple[int, int]:
        return (self.major, self.minor)


@dataclass(frozen=True, slots=True)
class DeviceFacts:
    """What sysfs says about a block device (a partition carries its disk's facts too)."""

    removable: bool
    #: The nearest bus up the device path: a portable one if there is one, else the first
    #: other ("virtio", "pci"), None for virtual devices (loop, device mapper).
    bus: str | None


@dataclass(frozen=True, slots=True)
class MediumWalk:
    """How far the search of a medium for project files went before it was unmounted."""

    files_checked: int
    matches: int
    #: None when every file was looked at; else why the walk stopped early.
    stopped_because: str | None = None


def decode_mountinfo_path(field: str) -> str:
    """The kernel writes space, tab, newline and backslash in paths as three octal digits."""
    return _OCTAL_ESCAPE.sub(lambda match: chr(int(match.group(1), 8)), field)


def parse_mountinfo_line(line: str) -> Mount:
    """One mountinfo line; ValueError names what is wrong with a line that is not one."""
    fields = line.split(" ")
    try:
        separator = fields.index("-", 6)
    except ValueError:
        raise ValueError("mountinfo line without the '-' separator") from None
    if separator + 3 > len(fields):
        raise ValueError("mountinfo line ends before its file system type and source")
    major, _, minor = fields[2].partition(":")
    return Mount(
        mount_id=int(fields[0]),
        parent_id=int(fields[1]),
        major=int(major),
        minor=int(minor),
        root=decode_mountinfo_path(fields[3]),
        mount_point=decode_mountinfo_path(fields[4]),
        mount_options=fields[5],
        optional_fields=tuple(fields[6:separator]),
        fstype=decode_mountinfo_path(fields[separator + 1]),
        source=decode_mountinfo_path(fields[separator + 2]),
        super_options=" ".join(fields[separator + 3:]),
    )


def parse_mountinfo(text: str) -> tuple[Mount, ...]:
    """Every mount in ``text``; blank lines are ignored, a malformed line is an error (the
    kernel never writes one, so it means the wrong file was read)."""
    return tuple(parse_mountinfo_line(line) for line in text.split("\n") if line.strip())


def _normal_point(point: str) -> str:
    return point.rstrip("/") or "/"


def policy_mount_point_of(mount_point: str, mount_points: Sequence[str]) -> str | None:
    """The policy mount point ``mount_point`` is at or under; "/" itself never counts, or
    every mount on the host would be a medium."""
    for point in mount_points:
        normal = _normal_point(point)
        if normal == "/":
            continue
        if mount_point == normal or mount_point.startswith(normal + "/"):
            return normal
    return None


def enclave_storage_on(mount_point: str, enclave_paths: Sequence[str]) -> str | None:
    """The first of the enclave's own folders (zones, state, key store) that lives on the
    file system mounted at ``mount_point``, if any. Such a mount is reported but never
    unmounted: a data disk at /mnt/data is where the policy's mount points say media go, yet
    taking it away would take the projects' data with it."""
    normal = _normal_point(mount_point)
    for path in enclave_paths:
        if normal == "/" or path == normal or path.startswith(normal + "/"):
            return path
    return None


def is_portable_device(facts: DeviceFacts | None) -> bool:
    return facts is not None and (facts.removable or facts.bus in PORTABLE_BUSES)


def medium_fingerprint(mount: Mount) -> str:
    """One medium mounted once: a remount of the same stick later is a new mount id."""
    return f"mount:{mount.mount_id} dev:{mount.major}:{mount.minor}"


def _yes_no(flag: bool) -> str:
    return "yes" if flag else "no"


def portable_findings(
    mounts: Sequence[Mount],
    facts: Mapping[tuple[int, int], DeviceFacts],
    mount_points: Sequence[str],
    response: Response,
) -> list[Finding]:
    """One finding per mount that is a portable medium, deepest mount point first (so that a
    medium mounted inside another is unmounted before the one it sits on)."""
    findings: list[tuple[int, Finding]] = []
    for mount in mounts:
        if mount.mount_point == "/":
            continue
        under = policy_mount_point_of(mount.mount_point, mount_points)
        device = facts.get(mount.device)
        if under is None and (mount.fstype in PSEUDO_FILESYSTEMS or mount.major == 0):
            continue
        if under is None and not is_portable_device(device):
            continue
        removable = device is not None and device.removable
        bus = device.bus if device is not None else None
        where = f", under policy mount point {under}" if under is not None else ""
        summary = (f"{mount.fstype} mounted at {mount.mount_point} "
                   f"(removable: {_yes_no(removable)}, bus: {bus or 'none'}{where})")
        details: dict[str, object] = {
            "mount_id": mount.mount_id,
            "device": f"{mount.major}:{mount.minor}",
            "fstype": mount.fstype,
            "source": mount.source,
            "removable": removable,
            "bus": bus,
            "policy_mount_point": under,
        }
        finding = Finding(
            rule=RULE, kind=PORTABLE_MEDIUM, project=None, path=mount.mount_point, zone=None,
            fingerprint=medium_fingerprint(mount), response=response, summary=summary,
            details=MappingProxyType(details),
        )
        findings.append((mount.mount_point.count("/"), finding))
    findings.sort(key=lambda pair: -pair[0])
    return [finding for _, finding in findings]


def with_walk(finding: Finding, walk: MediumWalk) -> Finding:
    """The medium's finding, saying how much of it was searched for project files."""
    if walk.stopped_because is None:
        searched = f"; {walk.files_checked} files searched"
    else:
        searched = (f"; search stopped after {walk.files_checked} files "
                    f"({walk.stopped_because})")
    found = f", {walk.matches} project files found" if walk.matches else ""
    details = {**finding.details, "files_checked": walk.files_checked,
               "project_files": walk.matches, "search_complete": walk.stopped_because is None,
               "search_stopped_because": walk.stopped_because}
    return replace(finding, summary=finding.summary + searched + found,
                   details=MappingProxyType(details))


def project_file_finding(
    medium: Finding, *, project: str, path: str, zone_path: str, fingerprint: str
) -> Finding:
    """A project's file found on a medium: a violation of its own, for the project's leader.
    It shares the medium's response: unmounting the medium is what is done about the file."""
    return Finding(
        rule=RULE, kind=PROJECT_FILE_ON_MEDIUM, project=project, path=path, zone=None,
        fingerprint=fingerprint, response=medium.response,
        summary=f"copy of {zone_path} found on the medium mounted at {medium.path}",
        details=MappingProxyType({"medium": medium.path, "original": zone_path,
                                  "medium_fingerprint": medium.fingerprint}),
    )
