"""S1: copies of data-zone files found outside the zones, by content.

A copy is recognised by its bytes, not its name: people rename what they copy. Hashing every
file under /home and /tmp would be slow, so the zones are indexed by size first, and a file
outside is hashed only when some zone file has exactly its size; a zone file is hashed only
when a candidate of its size turns up, and once. Empty files never match: every empty file is
equal to every other.

Walking never follows a symlink (each directory is opened relative to its parent with
O_NOFOLLOW), never opens anything but a regular file (a FIFO would block, a device may rewind a
tape), and never enters the kernel's own file systems (/proc, /sys, /dev and their kind).
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from types import MappingProxyType

from agent.access.acl import open_dir_nofollow
from agent.storage.findings import Finding, Response
from agent.storage.mounts import PSEUDO_FILESYSTEMS, parse_mountinfo

RULE = "S1"
COPY = "copy"

#: Trees whose file systems hold kernel state, not files anyone copied.
KERNEL_TREES = ("/proc", "/sys", "/dev")

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_CHUNK = 1 << 20


@dataclass(frozen=True, slots=True)
class FoundFile:
    """A regular file met on a walk: where it is, and the directory it was found in (open
    while the caller holds it, so it can be opened without resolving the path again)."""

    path: str
    dir_fd: int
    name: str
    status: os.stat_result


def kernel_devices(mountinfo: str) -> frozenset[int]:
    """Devices of the kernel's file systems: never walked, wherever they are mounted."""
    devices = set()
    for mount in parse_mountinfo(mountinfo):
        kernel_tree = any(mount.mount_point == tree or mount.mount_point.startswith(tree + "/")
                          for tree in KERNEL_TREES)
        if kernel_tree or mount.fstype in PSEUDO_FILESYSTEMS:
            devices.add(os.makedev(mount.major, mount.minor))
    return frozenset(devices)


def host_kernel_devices() -> frozenset[int]:
    try:
        with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as file:
            devices = set(kernel_devices(file.read()))
    except OSError:
        devices = set()
    for tree in KERNEL_TREES:
        try:
            devices.add(os.stat(tree).st_dev)
        except OSError:
            continue
    return frozenset(devices)


def walk_regular_files(
    root: str,
    *,
    skip_dirs: frozenset[tuple[int, int]] = frozenset(),
    skip_devices: frozenset[int] = frozenset(),
    one_file_system: bool = False,
    visited: set[tuple[int, int]] | None = None,
) -> Iterator[FoundFile]:
    """Every regular file under ``root``, depth first, holding one open directory per level.

    ``skip_dirs`` are (device, inode) pairs of directories not to enter (the zones);
    ``one_file_system`` keeps to ``root``'s file system (a medium's own files); ``visited``,
    shared between calls, keeps overlapping roots from being walked twice. A directory that
    vanishes or cannot be read is passed over: the tree is live."""
    try:
        top_fd = os.open(root, _DIR_FLAGS)
    except OSError:
        return
    top = os.fstat(top_fd)
    seen = visited if visited is not None else set()
    if not _may_enter(top, top.st_dev, skip_dirs, skip_devices, one_file_system, seen):
        os.close(top_fd)
        return
    stack = [(root.rstrip("/") or "/", top_fd, os.scandir(top_fd))]
    try:
        while stack:
            path, dir_fd, entries = stack[-1]
            entry = next(entries, None)
            if entry is None:
                stack.pop()
                entries.close()
                os.close(dir_fd)
                continue
            try:
                status = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            child = f"{path.rstrip('/')}/{entry.name}"
            if stat.S_ISREG(status.st_mode):
                yield FoundFile(child, dir_fd, entry.name, status)
            elif stat.S_ISDIR(status.st_mode) and _may_enter(
                    status, top.st_dev, skip_dirs, skip_devices, one_file_system, seen):
                try:
                    child_fd = os.open(entry.name, _DIR_FLAGS, dir_fd=dir_fd)
                except OSError:
                    continue
                stack.append((child, child_fd, os.scandir(child_fd)))
    finally:
        for _path, dir_fd, entries in stack:
            entries.close()
            os.close(dir_fd)


def _may_enter(status: os.stat_result, top_device: int, skip_dirs: frozenset[tuple[int, int]],
               skip_devices: frozenset[int], one_file_system: bool,
               seen: set[tuple[int, int]]) -> bool:
    identity = (status.st_dev, status.st_ino)
    if identity in skip_dirs or identity in seen or status.st_dev in skip_devices:
        return False
    if one_file_system and status.st_dev != top_device:
        return False
    seen.add(identity)
    return True


def open_if_regular(name: str, dir_fd: int | None = None) -> int | None:
    """A read descriptor on ``name`` if it is a regular file, else None. Root must never open
    a device node or a FIFO it did not mean to (opening some devices does something): the
    entry is first taken with O_PATH, which opens nothing, and reopened only once fstat
    says it is a regular file."""
    try:
        handle = os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(handle).st_mode):
            return None
        return os.open(f"/proc/self/fd/{handle}", os.O_RDONLY | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError:
        return None
    finally:
        os.close(handle)


def open_regular(found: FoundFile) -> int | None:
    """A descriptor on the very file the walk saw, or None if it changed into something else
    (a FIFO or a symlink swapped in) or went away."""
    fd = open_if_regular(found.name, found.dir_fd)
    if fd is None:
        return None
    if os.fstat(fd).st_ino != found.status.st_ino:
        os.close(fd)
        return None
    return fd


def sha256_of_fd(fd: int) -> bytes:
    """Read with pread from the start, whatever the descriptor's offset."""
    digest = hashlib.sha256()
    offset = 0
    while chunk := os.pread(fd, _CHUNK, offset):
        digest.update(chunk)
        offset += len(chunk)
    return digest.digest()


class ZoneFileIndex:
    """The data zones' regular files by size, hashed on demand. Used by one thread at a
    time (a scan, the mount monitor's check); build a fresh one per scan, as zones change."""

    def __init__(self, by_size: dict[int, list[tuple[str, str]]]) -> None:
        self._by_size = by_size
        self._digests: dict[str, bytes | None] = {}

    @classmethod
    def build(cls, projects: Sequence[tuple[str, str]]) -> ZoneFileIndex:
        """From (project id, data-zone root) pairs; a missing zone is simply empty."""
        by_size: dict[int, list[tuple[str, str]]] = {}
        skip_devices = host_kernel_devices()
        for project, root in projects:
            for found in walk_regular_files(root, skip_devices=skip_devices):
                if found.status.st_size > 0:
                    by_size.setdefault(found.status.st_size, []).append((project, found.path))
        return cls(by_size)

    def __len__(self) -> int:
        return sum(len(files) for files in self._by_size.values())

    def has_size(self, size: int) -> bool:
        return size > 0 and size in self._by_size

    def zone_paths(self) -> frozenset[str]:
        return frozenset(path for files in self._by_size.values() for _, path in files)

    def match(self, fd: int, size: int) -> tuple[str, str] | None:
        """(project, zone path) of a zone file with the same bytes as ``fd``, if any."""
        if not self.has_size(size):
            return None
        digest = sha256_of_fd(fd)
        for project, path in self._by_size[size]:
            if self._zone_digest(path, size) == digest:
                return project, path
        return None

    def _zone_digest(self, path: str, size: int) -> bytes | None:
        if path not in self._digests:
            self._digests[path] = _digest_of_path(path, size)
        return self._digests[path]


def _digest_of_path(path: str, size: int) -> bytes | None:
    """None when the zone file is gone or no longer the regular file of ``size`` indexed. Its
    folder is reached from / without following a link: a folder of the zone swapped for a
    symlink since the index was built leads nowhere."""
    try:
        folder = open_dir_nofollow(os.path.dirname(path))
    except OSError:
        return None
    try:
        fd = open_if_regular(os.path.basename(path), folder)
    finally:
        os.close(folder)
    if fd is None:
        return None
    try:
        status = os.fstat(fd)
        if not stat.S_ISREG(status.st_mode) or status.st_size != size:
            return None
        return sha256_of_fd(fd)
    except OSError:
        return None
    finally:
        os.close(fd)


def copy_fingerprint(status: os.stat_result) -> str:
    """The state of the copy judged: a copy rewritten or replaced is a new finding."""
    return f"{status.st_size}:{status.st_mtime_ns}:{status.st_ino}"


def find_copies(
    index: ZoneFileIndex, places: Sequence[str], *, skip: Sequence[str]
) -> Iterator[Finding]:
    """S1 findings for every file in ``places`` (the policy's ``storage.copy_scan_paths``)
    whose bytes equal a zone file's; ``skip`` are the zones themselves. Other file systems
    mounted in a place are searched (a home on its own disk), the kernel's are not."""
    skip_dirs = directory_identities(skip)
    skip_devices = host_kernel_devices()
    visited: set[tuple[int, int]] = set()
    for place in places:
        for found in walk_regular_files(place, skip_dirs=skip_dirs,
                                        skip_devices=skip_devices, visited=visited):
            match = original_of(found, index)
            if match is not None:
                yield copy_finding(match[0], match[1], found)


def directory_identities(paths: Sequence[str]) -> frozenset[tuple[int, int]]:
    """(device, inode) of each folder that exists, for ``walk_regular_files``'s skip_dirs."""
    found = set()
    for path in paths:
        try:
            status = os.stat(path)
        except OSError:
            continue
        found.add((status.st_dev, status.st_ino))
    return frozenset(found)


def original_of(found: FoundFile, index: ZoneFileIndex) -> tuple[str, str] | None:
    """(project, zone path) of the zone file ``found`` is a copy of; an unreadable file is
    passed over (a stick with bad sectors, a file deleted meanwhile)."""
    if not index.has_size(found.status.st_size):
        return None
    fd = open_regular(found)
    if fd is None:
        return None
    try:
        return index.match(fd, found.status.st_size)
    except OSError:
        return None
    finally:
        os.close(fd)


def copy_finding(project: str, zone_path: str, found: FoundFile) -> Finding:
    return Finding(
        rule=RULE, kind=COPY, project=project, path=found.path, zone=None,
        fingerprint=copy_fingerprint(found.status), response=Response.ALERT,
        summary=f"copy of {zone_path} found outside the zones",
        details=MappingProxyType({"original": zone_path, "size": found.status.st_size}),
    )
