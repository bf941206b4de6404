"""Running processes that still hold a project's files (rule A3, offboarding).

Why this exists: removing a member changes the ACLs and the gate's access list, but a file
descriptor opened before the removal keeps working, as does a working directory inside a zone
or a file mapped into memory. Ending access therefore means finding the removed user's
processes that hold files under the project's zones, telling the leader about them and, when
asked, ending them.

Everything here reads /proc, where any process may exit or change identity between two reads.
Such races are the normal case, not an error: a process that disappears mid-scan is skipped,
and nothing here raises because a process went away or a file became unreadable.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from agent.access.users import name_of_uid

PROC = "/proc"
_DELETED = " (deleted)"

Clock = Callable[[], float]


@dataclass(frozen=True)
class ProcessHold:
    """One process of ``uid`` and what it holds inside the zones.

    ``paths`` are open files as the kernel names them, the working directory marked
    ``cwd:/path`` and files mapped into memory (with no descriptor left) marked ``mmap:/path``.
    """

    pid: int
    uid: int
    user: str
    program: str
    paths: tuple[str, ...]


def _uids(pid: int) -> tuple[int, int, int, int] | None:
    """(real, effective, saved, fs) uids of ``pid``, or None if it is gone or unreadable."""
    try:
        with open(f"{PROC}/{pid}/status", encoding="utf-8", errors="replace") as status:
            for line in status:
                if line.startswith("Uid:"):
                    real, effective, saved, fs = (int(part) for part in line.split()[1:5])
                    return real, effective, saved, fs
    except (OSError, ValueError):
        return None
    return None


def _acts_as(pid: int, uid: int) -> bool:
    """Whether ``pid`` can reach files as ``uid``: real, effective or file-system uid.

    The saved uid is left out on purpose: it grants nothing until the process switches to it,
    and then it shows as the effective uid.
    """
    uids = _uids(pid)
    if uids is None:
        return False
    real, effective, _saved, fs = uids
    return uid in (real, effective, fs)


def _readlink(path: str) -> str | None:
    try:
        return os.readlink(path)
    except OSError:
        return None


def fsuid(pid: int) -> int | None:
    """The file-system uid the kernel checks opens with; None if the process is gone.

    Read with one ``os.read`` of a raw descriptor: the fanotify gate calls this for every open
    in a zone while the opener waits.
    """
    try:
        fd = os.open(f"{PROC}/{pid}/status", os.O_RDONLY | os.O_CLOEXEC)
    except (FileNotFoundError, ProcessLookupError):
        return None
    try:
        text = os.read(fd, 8192)
    except ProcessLookupError:  # the process exited between open and read
        return None
    finally:
        os.close(fd)
    start = text.find(b"\nUid:")
    if start < 0:
        return None
    return int(text[start:text.index(b"\n", start + 1)].split()[4])


def program_name(pid: int, *, gone: str = "?") -> str:
    """The short name people know a process by (``cat``), else its executable's base name;
    ``gone`` if the process ended before we looked."""
    try:
        with open(f"{PROC}/{pid}/comm", "rb") as comm:
            name = os.fsdecode(comm.read().strip())
        if name:
            return name
    except OSError:
        pass
    exe = _readlink(f"{PROC}/{pid}/exe")
    return os.path.basename(exe) if exe else gone


def program_path(pid: int, *, gone: str = "?") -> str:
    """The executable's path (``/usr/bin/cat``), else the short name; ``gone`` if neither.

    For the access log the path is the better witness: a process can rename its short name
    (``prctl(PR_SET_NAME)``) but not the file it was started from.
    """
    exe = _readlink(f"{PROC}/{pid}/exe")
    return exe if exe else program_name(pid, gone=gone)


class _Zones:
    """Zone roots compared by path component: /z/p1/data holds /z/p1/data/x, not /z/p1/data2.

    Each root is kept both as given (normalised) and resolved, because /proc names files by
    their real path while a configured zone root may pass through a symbolic link.
    """

    def __init__(self, roots: Iterable[str]) -> None:
        prefixes: set[str] = set()
        for root in roots:
            for form in (os.path.normpath(root), os.path.realpath(root)):
                if os.path.isabs(form):
                    prefixes.add(form)
        self.roots = tuple(sorted(prefixes))

    def contain(self, path: str) -> bool:
        if not path.startswith("/"):
            return False  # socket:[...], pipe:[...], anon_inode:...: not files in a zone
        if path.endswith(_DELETED) and not os.path.lexists(path):
            path = path[: -len(_DELETED)]
        path = os.path.normpath(path)
        for root in self.roots:
            if root == "/" or path == root or path.startswith(root + "/"):
                return True
        return False


def _held_paths(pid: int, zones: _Zones) -> list[str] | None:
    """What ``pid`` holds inside the zones, or None if the process vanished meanwhile."""
    base = f"{PROC}/{pid}"
    held: list[str] = []
    cwd = _readlink(f"{base}/cwd")
    if cwd is not None and zones.contain(cwd):
        held.append(f"cwd:{cwd}")
    try:
        fds = os.listdir(f"{base}/fd")
    except FileNotFoundError:
        return None
    except OSError:
        fds = []  # a permission race (the process changed identity): judge by what we have
    opened: set[str] = set()
    for fd in sorted(fds, key=lambda name: int(name) if name.isdigit() else -1):
        target = _readlink(f"{base}/fd/{fd}")
        if target is not None and zones.contain(target) and target not in opened:
            opened.add(target)
            held.append(target)
    held.extend(f"mmap:{path}" for path in _mapped(pid, zones) if path not in opened)
    return held


def _mapped(pid: int, zones: _Zones) -> list[str]:
    """Files mapped into memory: they stay readable after their descriptor is closed."""
    found: list[str] = []
    try:
        with open(f"{PROC}/{pid}/maps", encoding="utf-8", errors="replace") as maps:
            for line in maps:
                parts = line.rstrip("\n").split(maxsplit=5)
                if len(parts) == 6 and zones.contain(parts[5]) and parts[5] not in found:
                    found.append(parts[5])
    except OSError:
        return []
    return found


def _pids() -> list[int]:
    try:
        names = os.listdir(PROC)
    except OSError:
        return []
    return sorted(int(name) for name in names if name.isdigit())


def find_holders(uid: int, zone_roots: Iterable[str]) -> list[ProcessHold]:
    """The processes acting as ``uid`` that hold files or a working directory in the zones.

    A process counts when its real, effective or file-system uid is ``uid``: any of them can
    carry the access the user had. Sorted by pid.
    """
    zones = _Zones(zone_roots)
    if not zones.roots:
        return []
    user = name_of_uid(uid)
    holds: list[ProcessHold] = []
    for pid in _pids():
        if not _acts_as(pid, uid):
            continue
        program = program_name(pid)
        held = _held_paths(pid, zones)
        if not held or not _acts_as(pid, uid):
            continue  # gone, holds nothing, or changed identity while we looked
        holds.append(ProcessHold(pid=pid, uid=uid, user=user, program=program,
                                 paths=tuple(held)))
    return holds


def _open_verified(hold: ProcessHold) -> tuple[int | None, bool]:
    """A pidfd for ``hold`` if it still is a process of ``hold.uid``; ``(None, gone)`` if not.

    The pidfd is opened before the uid is checked, so a later signal reaches the process that
    was checked or nobody: if the pid is reused meanwhile, the pidfd still names the dead
    process and the signal fails instead of hitting a stranger.
    """
    try:
        pidfd = os.pidfd_open(hold.pid)
    except ProcessLookupError:
        return None, True
    except OSError:
        return None, False
    if not _acts_as(hold.pid, hold.uid):
        # The pid now belongs to another identity (reused, or the process switched user):
        # not ours to end, and we cannot tell that the process we found is gone.
        os.close(pidfd)
        return None, False
    return pidfd, False


def _send(pidfd: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        signal.pidfd_send_signal(pidfd, signum)


def _wait_exits(pidfds: dict[int, int], timeout: float, clock: Clock) -> set[int]:
    """Wait until every pidfd reports its process exited or ``timeout`` passes on ``clock``.

    A pidfd becomes readable when its process exits, even one that is not our child, so no
    polling of /proc is needed. Returns the pids that exited.
    """
    exited: set[int] = set()
    if not pidfds:
        return exited
    poller = select.poll()
    by_fd = {fd: pid for pid, fd in pidfds.items()}
    for fd in by_fd:
        poller.register(fd, select.POLLIN)
    deadline = clock() + timeout
    while True:
        remaining = deadline - clock()
        # Short slices, so that an injected clock which jumps ends the wait promptly; a last
        # look without waiting once the time is up.
        wait_ms = max(1, int(min(remaining, 0.05) * 1000)) if remaining > 0 else 0
        for fd, _event in poller.poll(wait_ms):
            exited.add(by_fd[fd])
            poller.unregister(fd)
        if len(exited) == len(by_fd) or remaining <= 0:
            break
    return exited


def terminate(
    holds: Sequence[ProcessHold],
    *,
    grace: float = 2.0,
    clock: Clock = time.monotonic,
    kill_wait: float = 2.0,
) -> list[int]:
    """End the processes in ``holds``: SIGTERM, up to ``grace`` seconds to exit, then SIGKILL.

    Returns the pids that are gone (sorted), whether they went on SIGTERM, on SIGKILL or before
    we got to them. Never signals pid 1 or this process. Each pid is re-checked to still act as
    the hold's uid before any signal, since a pid may have been reused by someone else's process
    since the scan; such a pid is neither signalled nor reported gone. ``kill_wait`` bounds the
    wait for the kernel to finish off killed processes (one stuck in uninterruptible I/O may
    outlive it and is then not reported gone).
    """
    gone: set[int] = set()
    pidfds: dict[int, int] = {}
    own = os.getpid()
    try:
        for hold in holds:
            if hold.pid in (0, 1, own) or hold.pid < 0 or hold.pid in pidfds:
                continue
            pidfd, vanished = _open_verified(hold)
            if vanished:
                gone.add(hold.pid)
            if pidfd is not None:
                pidfds[hold.pid] = pidfd
        for pidfd in pidfds.values():
            _send(pidfd, signal.SIGTERM)
        gone |= _wait_exits(pidfds, grace, clock)
        survivors = {pid: fd for pid, fd in pidfds.items() if pid not in gone}
        for pidfd in survivors.values():
            _send(pidfd, signal.SIGKILL)
        if survivors:
            gone |= _wait_exits(survivors, kill_wait, clock)
    finally:
        for pidfd in pidfds.values():
            os.close(pidfd)
    return sorted(gone)
