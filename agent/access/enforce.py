"""Carrying the access plan out on disk: every zone's POSIX ACLs, checked, repaired, reported.

Why user entries (``u:UID:rwX``) and not a group per project: a group would need a writable
/etc under the hardened unit and a fresh login before it takes effect. Why the zone root comes
first and alone (``apply_zone_root``): with the uid gone from the zone directory's ACL no path
into the zone resolves for that user any more, in O(1) whatever the size of the tree; the walk
(``apply_acl_plan``) then removes the remaining traces, and the fanotify gate covers
directories and files the user already holds open meanwhile.

How the walk stays inside the zone: each entry is opened ``O_PATH | O_NOFOLLOW`` relative to
its parent's descriptor and examined with ``fstat`` before anything is done to it (see
``agent.access.acl``). Symlinks are never followed and carry no ACL; fifos, sockets and devices
are left alone and reported. The walk does not enter another file system mounted inside a
zone: only root mounts, a bind mount could alias another project's zone (whose files would
then get this project's ACL), and a FUSE mount could be served by a member. Such mount points
are reported instead. Nothing is ever moved or deleted, and every step is idempotent, so a run
cut short by a crash is completed by the next one.
"""

from __future__ import annotations

import functools
import os
import stat
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field

from agent.access import acl
from agent.access.plan import AccessPlan, AclSpec, ZoneAccess, ZoneKind, desired_acl
from agent.access.plan import desired_default_acl as _default_spec
from agent.errors import Failed, InvalidRequest

#: Drift, errors and unusual entries listed in a report; the totals keep counting past this.
REPORT_CAP = 100
#: Directories open at once while walking (one descriptor per level). Deeper trees are
#: reported, not walked: the zone root's ACL still governs every path into them.
MAX_DEPTH = 400

_OPEN_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC


@dataclass(frozen=True)
class Drift:
    """One entry whose ACL was not the planned one: what was found, what was set."""

    path: str
    found: str
    set: str


@dataclass
class ApplyReport:
    checked: int = 0  # regular files and directories compared with the plan
    changed: int = 0  # of those, how many had their ACL rewritten
    handed_over: int = 0  # entries chowned from a leaver to the heir (A3)
    skipped: int = 0  # symlinks, special files, mount points: never touched
    drift: list[Drift] = field(default_factory=list)  # the first REPORT_CAP
    drift_total: int = 0
    errors: list[str] = field(default_factory=list)  # the first REPORT_CAP
    error_total: int = 0
    unusual: list[str] = field(default_factory=list)  # specials, mounts, hard links
    unusual_total: int = 0

    def add_drift(self, drift: Drift) -> None:
        self.drift_total += 1
        if len(self.drift) < REPORT_CAP:
            self.drift.append(drift)

    def add_error(self, message: str) -> None:
        self.error_total += 1
        if len(self.errors) < REPORT_CAP:
            self.errors.append(message)

    def add_unusual(self, message: str) -> None:
        self.unusual_total += 1
        if len(self.unusual) < REPORT_CAP:
            self.unusual.append(message)


class _Desired:
    """One zone's planned ACLs, computed once so that checking a file is a bytes comparison."""

    def __init__(self, zone: ZoneAccess) -> None:
        self.file = desired_acl(zone, is_dir=False, executable=False)
        self.program = desired_acl(zone, is_dir=False, executable=True)
        self.dir = desired_acl(zone, is_dir=True, executable=True)
        self.default = _default_spec(zone)
        self.default_raw = acl.encode_default(self.default)
        # Expected access xattr by (kind, owner bits): kind 0 file, 1 executable file, 2 dir.
        specs = (self.file, self.program, self.dir)
        self.raw = {(kind, owner): acl.encode(specs[kind], owner)
                    for kind in range(3) for owner in range(8)}
        # The kernel mirrors the mask (or group entry) and the other entry in the mode's group
        # and other bits: when those are wrong the ACL is, without reading it.
        self.group_other = tuple((spec.mask << 3) | spec.other for spec in specs)

    def spec_for(self, mode: int) -> tuple[int, AclSpec]:
        if stat.S_ISDIR(mode):
            return 2, self.dir
        if mode & stat.S_IXUSR:
            return 1, self.program
        return 0, self.file

    def ensure(self, fd: int, mode: int, path: str, report: ApplyReport | None,
               owner: int | None = None) -> Drift | None:
        """Compare the inode's ACL(s) with the plan; rewrite what differs and say what it was.

        ``owner`` forces the owner bits (the zone root); otherwise they are the file's own.
        Wrong group or other mode bits prove drift without reading anything; otherwise it is
        one ``getxattr`` and one bytes comparison, and the parse runs only when the bytes
        differ (a file created under the default ACL, or real drift).
        """
        kind, spec = self.spec_for(mode)
        bits = (mode >> 6) & 7 if owner is None else owner
        raw: bytes | None = None
        access_ok = read = False
        if mode & 0o077 == self.group_other[kind]:
            raw, read = acl.read_raw(fd, acl.ACCESS_XATTR), True
            access_ok = raw is not None and raw == self.raw[kind, bits]
            if not access_ok:
                found = acl.parse(raw, mode)
                access_ok = not acl.differs(found, spec) and (owner is None or found.owner == owner)
        raw_default = acl.read_raw(fd, acl.DEFAULT_XATTR) if kind == 2 else self.default_raw
        default_ok = raw_default == self.default_raw or not acl.default_differs(
            acl.parse_default(raw_default), self.default)
        if access_ok and default_ok:
            return None
        drift = None
        if report is None or len(report.drift) < REPORT_CAP:
            if not read:
                raw = acl.read_raw(fd, acl.ACCESS_XATTR)
            before = acl.parse(raw, mode).text()
            after = acl.spec_text(spec, bits)
            if kind == 2:
                found_default = acl.parse_default(raw_default)
                if found_default is not None:
                    before += "," + found_default.text("d:")
                after += "," + acl.spec_text(self.default, 7, "d:")
            drift = Drift(path, before, after)
        if not access_ok:
            acl.write_acl(fd, spec, bits)
        if not default_ok:
            acl.write_default_acl(fd, self.default)
        if report is not None:
            report.changed += 1
            if drift is None:
                report.drift_total += 1
            else:
                report.add_drift(drift)
        return drift


@functools.lru_cache(maxsize=128)
def _desired(zone: ZoneAccess) -> _Desired:
    return _Desired(zone)


def apply_zone_root(zone: ZoneAccess) -> Drift | None:
    """Make a grant or a revocation effective for every path into the zone, in O(1).

    The zone directory is owned by root:root, its owner bits are rwx, and its access and
    default ACLs are the planned ones. Raises ``Failed`` when the zone cannot be reached (a
    missing zone, a symlink on its path).
    """
    try:
        fd = acl.open_dir_nofollow(zone.path)
    except OSError as exc:
        raise Failed(f"zone {zone.path} cannot be opened without following links: "
                     f"{exc.strerror or exc}") from exc
    try:
        return _ensure_root(fd, zone, None)
    except OSError as exc:
        raise Failed(f"zone {zone.path}: the ACL could not be set: {exc.strerror or exc}") from exc
    finally:
        os.close(fd)


def _ensure_root(fd: int, zone: ZoneAccess, report: ApplyReport | None) -> Drift | None:
    st = os.fstat(fd)
    desired = _desired(zone)
    if (st.st_uid, st.st_gid) == (0, 0):
        return desired.ensure(fd, st.st_mode, zone.path, report, owner=7)
    owned = f"owner {st.st_uid}:{st.st_gid}; "
    before = _current_text(fd, st.st_mode)
    os.chown(acl.proc_path(fd), 0, 0)
    drift = desired.ensure(fd, st.st_mode, zone.path, None, owner=7)
    after = drift.set if drift is not None else before
    drift = Drift(zone.path, owned + before, "owner 0:0; " + after)
    if report is not None:
        report.changed += 1
        report.add_drift(drift)
    return drift


def apply_acl_plan(plan: AccessPlan, *, handover: Mapping[int, int] | None = None,
                   kinds: Iterable[ZoneKind] | None = None) -> ApplyReport:
    """Walk every zone (or those of ``kinds``) and bring each entry to the planned ACL.

    ``handover`` maps a leaver's uid to the heir's (A3): entries the leaver owns are chowned to
    the heir, group unchanged. An heir the zone does not admit gets nothing: those entries go
    to root instead (the leader never comes to own files of the key zone, S6).
    """
    report = ApplyReport()
    wanted = None if kinds is None else frozenset(kinds)
    for zone in plan.zones:
        if wanted is None or zone.kind in wanted:
            _walk_zone(zone, handover or {}, report)
    return report


class _EveryoneToRoot(Mapping[int, int]):
    """An ended zone's heirs: whoever owns an entry, root inherits it (L8)."""

    def __getitem__(self, uid: int) -> int:
        if uid == 0:
            raise KeyError(uid)
        return 0

    def __contains__(self, uid: object) -> bool:
        return uid != 0

    def __iter__(self) -> Iterator[int]:
        return iter(())

    def __len__(self) -> int:
        return 0


def _heirs(zone: ZoneAccess, handover: Mapping[int, int]) -> Mapping[int, int]:
    if zone.ended:
        return _EveryoneToRoot()
    return {old: new if new == 0 or new in zone.uids else 0
            for old, new in handover.items() if old != new}


def _walk_zone(zone: ZoneAccess, handover: Mapping[int, int], report: ApplyReport) -> None:
    try:
        root = acl.open_dir_nofollow(zone.path)
    except OSError as exc:
        report.add_error(f"{zone.path}: zone not walked: {exc.strerror or exc}")
        return
    stack: list[tuple[int, str, list[str]]] = []
    try:
        desired = _desired(zone)
        heirs = _heirs(zone, handover)
        report.checked += 1
        _ensure_root(root, zone, report)
        device = os.fstat(root).st_dev
        top = os.open(".", _OPEN_DIR, dir_fd=root)
        stack.append((top, zone.path, _listing(top)))
        while stack:
            dir_fd, base, names = stack[-1]
            if not names:
                os.close(dir_fd)
                stack.pop()
                continue
            name = names.pop()
            path = f"{base}/{name}"
            try:
                sub = _visit(name, path, dir_fd, desired, heirs, device, report,
                             deep=len(stack) >= MAX_DEPTH)
            except OSError as exc:
                if not isinstance(exc, FileNotFoundError):  # gone meanwhile: nothing to do
                    report.add_error(f"{path}: {exc.strerror or exc}")
                continue
            if sub is not None:
                try:
                    stack.append((sub, path, _listing(sub)))
                except OSError as exc:
                    os.close(sub)
                    report.add_error(f"{path}: not listed: {exc.strerror or exc}")
    except OSError as exc:
        report.add_error(f"{zone.path}: zone walk stopped: {exc.strerror or exc}")
    finally:
        for dir_fd, _, _ in stack:
            os.close(dir_fd)
        os.close(root)


def _listing(dir_fd: int) -> list[str]:
    names = os.listdir(dir_fd)
    names.reverse()  # popped from the end: the walk goes in directory order
    return names


def _visit(name: str, path: str, dir_fd: int, desired: _Desired, heirs: Mapping[int, int],
           device: int, report: ApplyReport, *, deep: bool) -> int | None:
    """Handle one entry; return a listing descriptor when it is a directory to descend into."""
    fd = acl.open_entry(name, dir_fd)
    try:
        st = os.fstat(fd)
        mode = st.st_mode
        if stat.S_ISREG(mode):
            report.checked += 1
            if st.st_uid in heirs:
                _chown(fd, heirs[st.st_uid], report)
            if st.st_nlink > 1:
                report.add_unusual(f"{path}: regular file with {st.st_nlink} hard links")
            desired.ensure(fd, mode, path, report)
            return None
        if stat.S_ISDIR(mode):
            if st.st_dev != device:
                report.skipped += 1
                report.add_unusual(f"{path}: another file system is mounted here; not entered")
                return None
            report.checked += 1
            if st.st_uid in heirs:
                _chown(fd, heirs[st.st_uid], report)
            desired.ensure(fd, mode, path, report)
            if deep:
                report.add_error(f"{path}: deeper than {MAX_DEPTH} levels; not walked")
                return None
            return os.open(".", _OPEN_DIR, dir_fd=fd)
        report.skipped += 1
        if stat.S_ISLNK(mode):
            if st.st_uid in heirs:
                _chown_symlink(name, dir_fd, st, heirs[st.st_uid], report)
        else:
            report.add_unusual(f"{path}: {_kind(mode)}; left alone")
        return None
    finally:
        os.close(fd)


def _chown(fd: int, uid: int, report: ApplyReport) -> None:
    os.chown(acl.proc_path(fd), uid, -1)
    report.handed_over += 1


def _chown_symlink(name: str, dir_fd: int, seen: os.stat_result, uid: int,
                   report: ApplyReport) -> None:
    """A symlink is chowned by name, never followed, and only if it is still the one seen."""
    now = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    if (now.st_ino, now.st_dev) == (seen.st_ino, seen.st_dev) and stat.S_ISLNK(now.st_mode):
        os.chown(name, uid, -1, dir_fd=dir_fd, follow_symlinks=False)
        report.handed_over += 1


def _kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "fifo"
    if stat.S_ISSOCK(mode):
        return "socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "device node"
    return "unknown file type"


def _current_text(fd: int, mode: int) -> str:
    text = acl.read_acl(fd, mode).text()
    default = acl.read_default_acl(fd)
    return text + ("," + default.text("d:") if default is not None else "")


def repair_path(zone: ZoneAccess, path: str) -> Drift | None:
    """Bring one entry of the zone back to the plan (after an attribute-change event).

    ``path`` is absolute inside the zone, or relative to the zone root. It is resolved from the
    zone root one component at a time with ``O_NOFOLLOW``. Raises ``InvalidRequest`` for a path
    outside the zone, with '..', through a symlink or into another file system. Returns None
    when the entry was already right, is gone, or is a symlink or special file (no ACL).
    """
    parts = _components(zone, path)
    if not parts:
        return apply_zone_root(zone)
    try:
        fd = acl.open_dir_nofollow(zone.path)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise InvalidRequest(f"zone {zone.path} is not reachable without following links") \
            from exc
    try:
        device = os.fstat(fd).st_dev
        for index, part in enumerate(parts):
            try:
                nxt = acl.open_entry(part, fd)
            except (FileNotFoundError, NotADirectoryError):
                return None
            os.close(fd)
            fd = nxt
            st = os.fstat(fd)
            if st.st_dev != device:
                raise InvalidRequest(f"{path} lies on another file system mounted in the zone")
            last = index == len(parts) - 1
            if stat.S_ISLNK(st.st_mode) and not last:
                raise InvalidRequest(f"{path} leads through a symlink; links are never followed")
            if not last and not stat.S_ISDIR(st.st_mode):
                return None
        if not (stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode)):
            return None
        return _desired(zone).ensure(fd, st.st_mode, path, None)
    finally:
        os.close(fd)


def _components(zone: ZoneAccess, path: str) -> list[str]:
    root = zone.path.rstrip("/") or "/"
    if path.startswith("/"):
        if path.rstrip("/") != root and not path.startswith(root.rstrip("/") + "/"):
            raise InvalidRequest(f"{path} is not inside the zone {root}")
        path = path[len(root):]
    parts = [p for p in path.split("/") if p and p != "."]
    if ".." in parts or "\x00" in path:
        raise InvalidRequest(f"{path} must not contain '..'")
    return parts
