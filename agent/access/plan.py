"""What the file system must allow, computed from the access list: ``AccessPlan`` and ``GateView``.

Pure: the shell hands in the project's zones and active grants; these functions say which uids
each zone admits, which ACL every file in it must carry, and whether one open is allowed. Both
enforcement layers (POSIX ACLs and the fanotify gate) take their answer from here, so they
cannot disagree.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType

from agent.access.permissions import Relation
from agent.access.rules import Grant


class ZoneKind(StrEnum):
    DATA = "data"
    KEY = "key"
    EXPORT = "export"
    QUARANTINE = "quarantine"


#: Which relations open files in each zone. Auditors appear nowhere (A2: logs, never data);
#: key custodians only in the key zone and members never there (S5, S6); the quarantine is the
#: daemon's alone.
ZONE_RELATIONS: Mapping[ZoneKind, frozenset[Relation]] = MappingProxyType({
    ZoneKind.DATA: frozenset({Relation.LEADER, Relation.MEMBER}),
    ZoneKind.KEY: frozenset({Relation.KEY_CUSTODIAN}),
    ZoneKind.EXPORT: frozenset({Relation.LEADER, Relation.MEMBER}),
    ZoneKind.QUARANTINE: frozenset(),
})

_ROLE_RELATION = {
    "leader": Relation.LEADER,
    "member": Relation.MEMBER,
    "key_custodian": Relation.KEY_CUSTODIAN,
    "auditor": Relation.AUDITOR,
}


@dataclass(frozen=True, slots=True)
class ProjectZones:
    """A project's zone directories and its leader, as stored."""

    project: str
    leader_uid: int | None
    data: str
    key: str
    export: str
    quarantine: str
    #: The project has ended (any state after active): members, key custodians and the
    #: leader's write access are gone; the leader may still read the data zone (L8).
    ended: bool = False
    #: The policy's ``access.ended_leader_read``.
    leader_reads_after_end: bool = True

    def paths(self) -> dict[ZoneKind, str]:
        return {
            ZoneKind.DATA: self.data,
            ZoneKind.KEY: self.key,
            ZoneKind.EXPORT: self.export,
            ZoneKind.QUARANTINE: self.quarantine,
        }


@dataclass(frozen=True, slots=True)
class ZoneAccess:
    """One zone and the uids (besides root) that may open its files: ``uids`` read and write,
    ``readers`` only read (the leader of an ended project, L8)."""

    project: str
    kind: ZoneKind
    path: str
    uids: frozenset[int]
    readers: frozenset[int] = frozenset()
    #: The project has ended: every entry belongs to root, whoever made it, since owner bits
    #: would otherwise outlast the ACL (L8).
    ended: bool = False

    def admits(self, uid: int) -> bool:
        return uid in self.uids or uid in self.readers


@dataclass(frozen=True, slots=True)
class AccessPlan:
    project: str
    zones: tuple[ZoneAccess, ...]

    def zone(self, kind: ZoneKind) -> ZoneAccess:
        return next(z for z in self.zones if z.kind is kind)


def plan_access(project: ProjectZones, grants: Iterable[Grant]) -> AccessPlan:
    """Each zone admits the uids whose relation the zone table lists; nobody else. After the
    end, nobody writes anywhere and only the leader reads, in the data zone alone (L8);
    auditors keep the logs, which were never in the zones."""
    if project.ended:
        return _after_end(project)
    relations: dict[int, set[Relation]] = {}
    if project.leader_uid is not None:
        relations.setdefault(project.leader_uid, set()).add(Relation.LEADER)
    for grant in grants:
        relation = _ROLE_RELATION.get(grant.role)
        if relation is not None:
            relations.setdefault(grant.uid, set()).add(relation)
    zones = tuple(
        ZoneAccess(
            project=project.project,
            kind=kind,
            path=path,
            uids=frozenset(
                uid for uid, held in relations.items() if uid != 0 and held & ZONE_RELATIONS[kind]
            ),
        )
        for kind, path in project.paths().items()
    )
    return AccessPlan(project.project, zones)


def _after_end(project: ProjectZones) -> AccessPlan:
    reader = project.leader_uid if project.leader_reads_after_end else None
    zones = tuple(
        ZoneAccess(
            project=project.project,
            kind=kind,
            path=path,
            uids=frozenset(),
            readers=frozenset(
                {reader} if kind is ZoneKind.DATA and reader is not None and reader != 0
                else ()
            ),
            ended=True,
        )
        for kind, path in project.paths().items()
    )
    return AccessPlan(project.project, zones)


# --- The ACL every file must carry --------------------------------------------------------

READ, WRITE, EXECUTE = 4, 2, 1


@dataclass(frozen=True, slots=True)
class AclSpec:
    """A POSIX ACL as plain values: the owner's bits are the file's own and are left alone.

    ``users`` maps uid to permission bits (4 r, 2 w, 1 x). The owning group and others get
    nothing (``o-rwx``); the mask is the union of the named users' bits so it never cuts them.
    """

    users: tuple[tuple[int, int], ...]
    group: int
    mask: int
    other: int


def desired_acl(zone: ZoneAccess, *, is_dir: bool, executable: bool) -> AclSpec:
    """rwX for each admitted uid, r-X for each reader: execute on directories and on files
    already executable."""
    execute = EXECUTE if is_dir or executable else 0
    bits = READ | WRITE | execute
    granted = {uid: READ | execute for uid in zone.readers} | {uid: bits for uid in zone.uids}
    users = tuple(sorted(granted.items()))
    mask = 0
    for _, held in users:
        mask |= held
    return AclSpec(users=users, group=0, mask=mask, other=0)


def desired_default_acl(zone: ZoneAccess) -> AclSpec:
    """What new files and folders in a zone directory inherit (the kernel applies it at create)."""
    return desired_acl(zone, is_dir=True, executable=True)


# --- The gate's answer --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class GateView:
    """Every zone the gate guards, by path; replaced whole whenever the access list changes."""

    zones: Mapping[str, ZoneAccess]

    def zone_of(self, path: str) -> ZoneAccess | None:
        """The zone holding ``path`` (an absolute, resolved path), or None."""
        probe = path.rstrip("/") or "/"
        while True:
            zone = self.zones.get(probe)
            if zone is not None:
                return zone
            if probe == "/":
                return None
            probe = probe.rsplit("/", 1)[0] or "/"


EMPTY_VIEW = GateView(MappingProxyType({}))


def build_gate_view(plans: Iterable[AccessPlan]) -> GateView:
    zones = {(zone.path.rstrip("/") or "/"): zone for plan in plans for zone in plan.zones}
    return GateView(MappingProxyType(zones))


@dataclass(frozen=True, slots=True)
class GateDecision:
    allow: bool
    zone: ZoneAccess | None


def decide_open(view: GateView, path: str, uid: int) -> GateDecision:
    """Root and paths outside every zone pass; inside a zone, only the admitted uids."""
    zone = view.zone_of(path)
    if zone is None or uid == 0:
        return GateDecision(True, zone)
    return GateDecision(zone.admits(uid), zone)
