"""S2 in the daemon: notice every mount, judge it, search a medium for project files, act.

The kernel marks /proc/self/mountinfo with POLLPRI|POLLERR whenever the mount table changes
(until the table is read again through the same descriptor), so a thread can sleep in
``poll`` and wake on every mount and unmount. Each wake reads the whole table afresh and judges
every mount (agent.storage.mounts); a slow periodic re-read is the safety net should a wake be
missed. Mounts present at start are judged the same way, as is everything after a policy
reload: the policy is asked for on every check.

Order matters for a new medium: first its files are looked up in the zones' index (a project
file on it is a violation of its own, for that project's leader), then the response is carried
out, then everything is recorded in one transaction. Searching after an unmount would find
nothing.

Nothing that happens here may stop the daemon: a failed check is logged (paths masked, an
identity number can be a directory name) and the loop goes on.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import select
import threading
import traceback
from collections.abc import Sequence
from pathlib import Path

import structlog
from sqlmodel import select as sql_select

from agent.api.dispatch import Caller, RequestContext
from agent.audit.redact import redact_identity_numbers
from agent.services import Services
from agent.storage.copies import (
    ZoneFileIndex,
    copy_fingerprint,
    directory_identities,
    original_of,
    walk_regular_files,
)
from agent.storage.findings import NOTHING_DONE, ActionResult, Finding, Outcome, Response
from agent.storage.mounts import (
    PORTABLE_BUSES,
    PSEUDO_FILESYSTEMS,
    DeviceFacts,
    MediumWalk,
    Mount,
    enclave_storage_on,
    is_portable_device,
    medium_fingerprint,
    parse_mountinfo,
    portable_findings,
    project_file_finding,
    with_walk,
)
from agent.storage.violations import record_finding
from agent.store.tables import Project

log = structlog.get_logger("vokterd.mounts")

MOUNTINFO = "/proc/self/mountinfo"
SYSFS = "/sys"
#: umount2(2) flags: detach now, finish when the last user lets go; and never follow a
#: symlink planted at the mount point.
MNT_DETACH = 2
UMOUNT_NOFOLLOW = 8
_POLL_MOUNT_CHANGE = select.POLLPRI | select.POLLERR

_libc = ctypes.CDLL(None, use_errno=True)


def _umount2(path: str, flags: int) -> int:
    """0, or the errno umount2 failed with."""
    if _libc.umount2(os.fsencode(path), flags) == 0:
        return 0
    return ctypes.get_errno()


def _read_flag(path: Path) -> bool:
    try:
        return path.read_text().strip() == "1"
    except OSError:
        return False


def read_device_facts(major: int, minor: int, sysfs_root: str = SYSFS) -> DeviceFacts | None:
    """What sysfs says about a block device; None when it is no block device (tmpfs, nfs).

    A partition has no ``removable`` of its own that means anything: the disk it belongs to (its
    parent directory in sysfs) does. The bus is the ``subsystem`` of the devices up the path:
    the first portable one wins, else the nearest real bus is kept to be reported. A device
    mapper or md device (an encrypted stick opened with cryptsetup) is as portable as the
    devices under it (``slaves``)."""
    link = Path(sysfs_root) / "dev" / "block" / f"{major}:{minor}"
    try:
        device = link.resolve(strict=True)
    except OSError:
        return None
    return _facts_of(device, Path(sysfs_root).resolve() / "devices", depth=0)


def _facts_of(device: Path, devices_root: Path, depth: int) -> DeviceFacts:
    removable = _read_flag(device / "removable")
    if (device / "partition").exists():
        removable = removable or _read_flag(device.parent / "removable")
    nearest: str | None = None
    for ancestor in (device, *device.parents):
        if ancestor == devices_root or devices_root not in ancestor.parents:
            break
        try:
            subsystem = os.path.basename(os.readlink(ancestor / "subsystem"))
        except OSError:
            continue
        if subsystem in PORTABLE_BUSES:
            return DeviceFacts(removable=removable, bus=subsystem)
        if nearest is None and subsystem != "block":
            nearest = subsystem
    facts = DeviceFacts(removable=removable, bus=nearest)
    if is_portable_device(facts) or depth >= 4:
        return facts
    try:
        slaves = sorted((device / "slaves").iterdir())
    except OSError:
        return facts
    for slave in slaves:
        try:
            under = _facts_of(slave.resolve(strict=True), devices_root, depth + 1)
        except OSError:
            continue
        if is_portable_device(under):
            return under
    return facts


def gather_device_facts(
    mounts: Sequence[Mount], sysfs_root: str = SYSFS
) -> dict[tuple[int, int], DeviceFacts]:
    facts: dict[tuple[int, int], DeviceFacts] = {}
    for mount in mounts:
        if mount.major == 0 or mount.device in facts:
            continue
        found = read_device_facts(mount.major, mount.minor, sysfs_root)
        if found is not None:
            facts[mount.device] = found
    return facts


def unmount(mount_point: str) -> ActionResult:
    """Take a medium off the host.

    On EBUSY (a process has a file open on it, or its working directory there) the medium is
    detached lazily (MNT_DETACH) rather than left in place: it leaves the file tree at once, so
    no new copy can be started onto it and nobody else can reach it, and the kernel finishes
    the unmount when the last open file on it is closed. Leaving a busy medium mounted would
    leave the door open for as long as any process cared to hold it."""
    failure = _umount2(mount_point, UMOUNT_NOFOLLOW)
    if failure == 0:
        return ActionResult(Outcome.DONE, f"unmounted {mount_point}")
    if failure == errno.EBUSY:
        failure = _umount2(mount_point, UMOUNT_NOFOLLOW | MNT_DETACH)
        if failure == 0:
            return ActionResult(
                Outcome.DONE,
                f"{mount_point} was busy (files open on it): detached it from the file tree "
                "at once; the kernel completes the unmount when the last open file is closed")
    return ActionResult(Outcome.FAILED,
                        f"could not unmount {mount_point}: {os.strerror(failure)}")


class MountMonitor:
    """The thread that watches the mount table; ``check_now`` judges it on demand too."""

    def __init__(
        self,
        services: Services,
        caller: Caller,
        *,
        mountinfo_path: str = MOUNTINFO,
        sysfs_root: str = SYSFS,
        safety_seconds: float = 60.0,
        walk_max_files: int = 20_000,
        walk_seconds: float = 20.0,
    ) -> None:
        self._services = services
        self._caller = caller
        self._mountinfo_path = mountinfo_path
        self._sysfs_root = sysfs_root
        self._safety_seconds = safety_seconds
        self._walk_max_files = walk_max_files
        self._walk_seconds = walk_seconds
        self._check_lock = threading.Lock()
        #: (fingerprint, response) of the media already dealt with and still mounted: a
        #: medium is searched and acted on once, and again only if the policy's response
        #: changes (an alert turned into an unmount by a reload).
        self._handled: set[tuple[str, Response]] = set()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._wake_pipe: tuple[int, int] | None = None

    # -- the thread ------------------------------------------------------------------------

    def start(self) -> None:
        self._stopping.clear()
        self._wake_pipe = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
        self._thread = threading.Thread(target=self._run, name="vokter-mounts", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        self._stopping.set()
        if self._wake_pipe is not None:
            with contextlib.suppress(BlockingIOError):  # full: the thread is awake already
                os.write(self._wake_pipe[1], b"x")
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        if self._wake_pipe is not None:
            for fd in self._wake_pipe:
                os.close(fd)
            self._wake_pipe = None

    def _run(self) -> None:
        assert self._wake_pipe is not None
        wake_fd = self._wake_pipe[0]
        poller = select.poll()
        poller.register(wake_fd, select.POLLIN)
        table_fd: int | None = None
        try:
            table_fd = os.open(self._mountinfo_path, os.O_RDONLY | os.O_CLOEXEC)
            poller.register(table_fd, _POLL_MOUNT_CHANGE)
        except OSError as error:
            log.error("mountinfo_unwatchable", error=error.strerror or type(error).__name__,
                      fallback_seconds=self._safety_seconds)
        try:
            while not self._stopping.is_set():
                try:
                    text = (_read_whole(table_fd) if table_fd is not None
                            else self._read_mountinfo())
                    self._check(text)
                except Exception as error:  # the daemon outlives any one check
                    _log_failure(error)
                    # an unread table keeps the poll ready: pause rather than spin
                    self._stopping.wait(1.0)
                poller.poll(self._safety_seconds * 1000)
                _drain(wake_fd)
        finally:
            if table_fd is not None:
                os.close(table_fd)

    # -- checking ---------------------------------------------------------------------------

    def check_now(self) -> list[int]:
        """Judge the mount table as it is now; the ids of the violations recorded."""
        return self._check(self._read_mountinfo())

    def _read_mountinfo(self) -> str:
        with open(self._mountinfo_path, encoding="utf-8", errors="surrogateescape") as table:
            return table.read()

    def _check(self, text: str) -> list[int]:
        with self._check_lock:
            mounts = parse_mountinfo(text)
            storage = self._services.policies.current().storage
            response = (Response.UNMOUNT if storage.portable_media_action == "unmount"
                        else Response.ALERT)
            findings = portable_findings(
                mounts, gather_device_facts(mounts, self._sysfs_root),
                storage.portable_media_mount_points, response)
            present = {finding.fingerprint for finding in findings}
            self._handled = {key for key in self._handled if key[0] in present}
            new = [f for f in findings if (f.fingerprint, f.response) not in self._handled]
            if not new:
                return []
            by_fingerprint = {medium_fingerprint(m): m for m in mounts}
            zones, own = self._enclave()
            index = ZoneFileIndex.build(zones)
            recorded: list[int] = []
            for finding in new:
                try:
                    mount = by_fingerprint[finding.fingerprint]
                    recorded += self._handle(finding, mount, index, own)
                except Exception as error:  # one medium's trouble must not hide the others
                    _log_failure(error, path=finding.path)
                    continue
                self._handled.add((finding.fingerprint, finding.response))
            return recorded

    def _enclave(self) -> tuple[list[tuple[str, str]], tuple[str, ...]]:
        """(project, data zone) pairs to index, and every folder of the enclave's own."""
        with self._services.store.read() as session:
            projects = session.exec(sql_select(Project)).all()
        config = self._services.config
        own = [str(config.zones_dir), str(config.state_dir), str(config.key_store)]
        for project in projects:
            own += [project.data_root, project.key_root, project.export_root,
                    project.quarantine_root]
        return [(p.id, p.data_root) for p in projects], tuple(own)

    def _handle(self, medium: Finding, mount: Mount, index: ZoneFileIndex,
                own: Sequence[str]) -> list[int]:
        walk, file_findings = self._search(medium, mount, index, own)
        medium = with_walk(medium, walk)
        result = NOTHING_DONE
        ours = enclave_storage_on(mount.mount_point, own)
        if medium.response is Response.UNMOUNT and ours is not None:
            result = ActionResult(Outcome.FAILED, f"not unmounted: the enclave's own {ours} is "
                                  "on it; move it off the media mount point, or off the medium")
        elif medium.response is Response.UNMOUNT:
            result = unmount(mount.mount_point)
            if result.outcome is Outcome.DONE and self._still_mounted(mount.mount_id):
                result = ActionResult(
                    Outcome.FAILED, f"{mount.mount_point} is still mounted: another file system "
                    "is mounted over it, or it was mounted again at once")
        context = RequestContext(self._caller, self._services)
        recorded: list[int] = []
        with self._services.store.write() as session:
            for finding in (medium, *file_findings):
                violation = record_finding(session, context, finding, result)
                if violation is not None and violation.id is not None:
                    recorded.append(violation.id)
        log.warning("portable_medium", path=redact_identity_numbers(medium.path),
                    action=medium.response.value, outcome=result.outcome.value,
                    project_files=len(file_findings), recorded=len(recorded))
        return recorded

    def _still_mounted(self, mount_id: int) -> bool:
        return any(m.mount_id == mount_id for m in parse_mountinfo(self._read_mountinfo()))

    def _search(self, medium: Finding, mount: Mount, index: ZoneFileIndex,
                own: Sequence[str]) -> tuple[MediumWalk, list[Finding]]:
        """Look each file on the medium up in the zones' index, within the walk's bounds;
        the enclave's own folders on it are not searched (a zone file is no copy of itself)."""
        if mount.fstype in PSEUDO_FILESYSTEMS:
            return MediumWalk(0, 0, f"{mount.fstype} holds no files to search"), []
        try:
            top = os.stat(mount.mount_point, follow_symlinks=False)
        except OSError as error:
            return MediumWalk(0, 0, f"cannot open it: {error.strerror}"), []
        if top.st_dev != os.makedev(mount.major, mount.minor):
            return MediumWalk(0, 0, "another file system is mounted over it"), []
        clock = self._services.clock
        deadline = clock.monotonic() + self._walk_seconds
        checked = 0
        found: list[Finding] = []
        stopped: str | None = None
        try:
            for entry in walk_regular_files(mount.mount_point, one_file_system=True,
                                            skip_dirs=directory_identities(own)):
                if checked >= self._walk_max_files:
                    stopped = f"limit of {self._walk_max_files} files"
                    break
                if clock.monotonic() > deadline:
                    stopped = f"time budget of {self._walk_seconds:g} s"
                    break
                checked += 1
                match = original_of(entry, index)
                if match is not None:
                    found.append(project_file_finding(
                        medium, project=match[0], path=entry.path, zone_path=match[1],
                        fingerprint=f"{mount.mount_id}:{copy_fingerprint(entry.status)}"))
        except OSError as error:  # a failing stick is still unmounted: the search just ends
            stopped = f"read error: {error.strerror or type(error).__name__}"
        return MediumWalk(checked, len(found), stopped), found


def _read_whole(fd: int) -> str:
    """Reading through the polled descriptor is what re-arms its change notice."""
    os.lseek(fd, 0, os.SEEK_SET)
    chunks = []
    while chunk := os.read(fd, 1 << 16):
        chunks.append(chunk)
    return b"".join(chunks).decode("utf-8", errors="surrogateescape")


def _drain(fd: int) -> None:
    try:
        while os.read(fd, 64):
            pass
    except BlockingIOError:
        pass


def _log_failure(error: BaseException, path: str | None = None) -> None:
    log.error("mount_check_failed", error=type(error).__name__,
              message=redact_identity_numbers(str(error))[:500],
              path=redact_identity_numbers(path) if path is not None else None,
              trace=redact_identity_numbers(traceback.format_exc())[-4000:])
