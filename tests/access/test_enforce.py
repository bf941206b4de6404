"""The access list on the file system: real users, real zones, real ACLs; nothing mocked.

Zones are made as ``vokter project create`` makes them (a 0711 project directory holding
root-owned 0700 zones), the plan comes from the pure core, and every claim is proved by a test
user trying to read or write with ``runuser``.

Every subprocess here runs a fixed argv list (never shell=True) naming only the test's own
files and users.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from agent.access import acl
from agent.access.enforce import apply_acl_plan, apply_zone_root, repair_path
from agent.access.plan import AccessPlan, ProjectZones, ZoneKind, plan_access
from agent.access.rules import Grant
from agent.errors import InvalidRequest
from agent.projects.rules import plan_zones
from agent.projects.zones import create_zones, ensure_zones_root
from tests.support.users import TestUser, UserFactory

pytestmark = pytest.mark.root


@dataclass
class Enclave:
    zones: ProjectZones
    leader: TestUser
    alice: TestUser  # member
    bob: TestUser  # member
    keeper: TestUser  # key custodian
    auditor: TestUser
    outsider: TestUser
    outside: Path  # a directory of the enclave outside every zone

    def plan(self, *, without: tuple[TestUser, ...] = ()) -> AccessPlan:
        gone = {u.uid for u in without}
        grants = [Grant(u.name, u.uid, role) for u, role in (
            (self.alice, "member"), (self.bob, "member"), (self.keeper, "key_custodian"),
            (self.auditor, "auditor")) if u.uid not in gone]
        return plan_access(self.zones, grants)

    def zone(self, kind: ZoneKind) -> Path:
        return Path(self.zones.paths()[kind])


@pytest.fixture
def enclave(enclave_root: Path, unix_users: UserFactory) -> Enclave:
    ensure_zones_root(enclave_root / "zones")
    made = plan_zones("p1", str(enclave_root / "zones"))
    create_zones(made)
    outside = enclave_root / "outside"
    outside.mkdir()
    outside.chmod(0o755)
    leader = unix_users.create("vkl")
    return Enclave(
        zones=ProjectZones("p1", leader.uid, made.data, made.key, made.export, made.quarantine),
        leader=leader, alice=unix_users.create("vka"), bob=unix_users.create("vkb"),
        keeper=unix_users.create("vkk"), auditor=unix_users.create("vkx"),
        outsider=unix_users.create("vko"), outside=outside)


def as_user(user: TestUser, script: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["runuser", "-u", user.name, "--", "sh", "-c", script],
        capture_output=True, text=True, timeout=30, check=False, cwd="/")


def can_read(user: TestUser, path: Path) -> bool:
    return as_user(user, f"cat '{path}' >/dev/null").returncode == 0


def can_write(user: TestUser, path: Path) -> bool:
    return as_user(user, f"echo more >> '{path}'").returncode == 0


def getfacl_tree(path: Path) -> str:
    return subprocess.run(
        ["getfacl", "-R", "-p", "-n", str(path)],
        capture_output=True, text=True, check=True).stdout


def put(path: Path, text: str = "id,age\n1,40\n") -> Path:
    """A file as root's tools leave it (umask 022: 0644, readable by everyone)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(0o644)
    return path


def test_a1_member_reads_and_writes_data_and_an_outsider_is_denied(enclave: Enclave) -> None:
    cohort = put(enclave.zone(ZoneKind.DATA) / "raw" / "cohort.csv")
    report = apply_acl_plan(enclave.plan())
    assert report.errors == [] and report.checked >= 6 and report.changed >= 3
    assert can_read(enclave.alice, cohort) and can_write(enclave.alice, cohort)
    assert can_read(enclave.leader, cohort)
    assert not can_read(enclave.outsider, cohort)  # 0644 before: o-rwx now
    assert os.stat(cohort).st_mode & 0o007 == 0


def test_a1_files_created_later_by_another_member_are_shared_whatever_the_umask(
    enclave: Enclave,
) -> None:
    data = enclave.zone(ZoneKind.DATA)
    apply_acl_plan(enclave.plan())
    made = as_user(enclave.alice, f"umask 077; cd '{data}' && echo x > a.csv && mkdir sub "
                                  "&& echo y > sub/b.csv")
    assert made.returncode == 0, made.stderr
    for path in (data / "a.csv", data / "sub" / "b.csv"):
        assert can_read(enclave.bob, path) and can_write(enclave.bob, path)
        assert not can_read(enclave.outsider, path)
    assert as_user(enclave.bob, f"echo z > '{data}/sub/c.csv'").returncode == 0
    assert can_read(enclave.alice, data / "sub" / "c.csv")
    # what the kernel inherited is already the plan: a check finds nothing to repair
    assert apply_acl_plan(enclave.plan()).changed == 0


def test_s6_key_custodian_reaches_only_the_key_zone(enclave: Enclave) -> None:
    key = put(enclave.zone(ZoneKind.KEY) / "linkage.csv", "id,fnr\n")
    data = put(enclave.zone(ZoneKind.DATA) / "cohort.csv")
    export = put(enclave.zone(ZoneKind.EXPORT) / "table.csv")
    apply_acl_plan(enclave.plan())
    assert can_read(enclave.keeper, key) and can_write(enclave.keeper, key)
    assert not can_read(enclave.keeper, data) and not can_read(enclave.keeper, export)
    for user in (enclave.alice, enclave.leader, enclave.outsider):
        assert not can_read(user, key)


def test_a2_auditor_reaches_nothing(enclave: Enclave) -> None:
    files = [put(enclave.zone(kind) / "f.csv") for kind in ZoneKind]
    apply_acl_plan(enclave.plan())
    for path in files:
        assert not can_read(enclave.auditor, path)
        assert as_user(enclave.auditor, f"ls '{path.parent}'").returncode != 0
    assert f"user:{enclave.auditor.uid}:" not in getfacl_tree(enclave.zone(ZoneKind.DATA))


def test_a1_revocation_at_the_zone_root_alone_denies_path_access_at_once(
    enclave: Enclave,
) -> None:
    data = enclave.zone(ZoneKind.DATA)
    deep = put(data / "a" / "b" / "c.csv")
    apply_acl_plan(enclave.plan())
    assert can_read(enclave.alice, deep)
    without = enclave.plan(without=(enclave.alice,))
    drift = apply_zone_root(without.zone(ZoneKind.DATA))
    assert drift is not None and f"u:{enclave.alice.uid}:rwx" in drift.found
    assert f"u:{enclave.alice.uid}:" not in drift.set
    assert not can_read(enclave.alice, deep)  # effective before any deep clean-up...
    assert f"user:{enclave.alice.uid}:" in getfacl_tree(data / "a")  # ...which is still to do
    assert can_read(enclave.bob, deep)
    report = apply_acl_plan(without)
    assert report.errors == [] and report.changed >= 3
    tree = getfacl_tree(Path(enclave.zones.data).parent)  # every zone of the project
    assert f"user:{enclave.alice.uid}:" not in tree  # no access or default entry left anywhere
    assert can_read(enclave.bob, deep)


def test_a3_handover_chowns_the_leavers_files_to_the_leader_group_unchanged(
    enclave: Enclave,
) -> None:
    data = enclave.zone(ZoneKind.DATA)
    apply_acl_plan(enclave.plan())
    made = as_user(enclave.alice, f"cd '{data}' && mkdir mine && echo x > mine/notes.txt "
                                  "&& ln -s notes.txt mine/link")
    assert made.returncode == 0, made.stderr
    kept = put(data / "bobs.csv")
    os.chown(kept, enclave.bob.uid, enclave.bob.gid)
    without = enclave.plan(without=(enclave.alice,))
    apply_zone_root(without.zone(ZoneKind.DATA))
    report = apply_acl_plan(without, handover={enclave.alice.uid: enclave.leader.uid})
    assert report.handed_over == 3 and report.errors == []
    for path in (data / "mine", data / "mine" / "notes.txt", data / "mine" / "link"):
        st = os.lstat(path)
        assert (st.st_uid, st.st_gid) == (enclave.leader.uid, enclave.alice.gid)
    assert os.stat(kept).st_uid == enclave.bob.uid
    assert can_write(enclave.leader, data / "mine" / "notes.txt")
    assert not can_read(enclave.alice, data / "mine" / "notes.txt")
    assert apply_acl_plan(without, handover={enclave.alice.uid: enclave.leader.uid}) \
        .handed_over == 0  # resumable: nothing left to hand over


def test_a3_s6_a_key_custodians_files_go_to_root_never_to_the_leader(enclave: Enclave) -> None:
    key = enclave.zone(ZoneKind.KEY)
    apply_acl_plan(enclave.plan())
    assert as_user(enclave.keeper, f"echo k > '{key}/linkage.csv'").returncode == 0
    without = enclave.plan(without=(enclave.keeper,))
    report = apply_acl_plan(without, handover={enclave.keeper.uid: enclave.leader.uid})
    assert report.handed_over == 1
    assert os.stat(key / "linkage.csv").st_uid == 0
    assert not can_read(enclave.leader, key / "linkage.csv")


def test_symlinks_inside_the_zone_pointing_outside_are_never_followed(enclave: Enclave) -> None:
    data = enclave.zone(ZoneKind.DATA)
    target = put(enclave.outside / "secret.txt")
    (enclave.outside / "dir").mkdir()
    (data / "to-file").symlink_to(target)
    (data / "to-dir").symlink_to(enclave.outside / "dir")
    before = getfacl_tree(enclave.outside)
    report = apply_acl_plan(enclave.plan())
    assert report.skipped == 2 and report.errors == []
    assert getfacl_tree(enclave.outside) == before
    assert os.stat(target).st_mode & 0o777 == 0o644
    assert repair_path(enclave.plan().zone(ZoneKind.DATA), f"{data}/to-file") is None
    with pytest.raises(InvalidRequest, match="symlink"):
        repair_path(enclave.plan().zone(ZoneKind.DATA), f"{data}/to-dir/x")
    assert getfacl_tree(enclave.outside) == before


def test_a1_chmod_o_r_is_drift_and_repair_path_repairs_it(enclave: Enclave) -> None:
    data = enclave.zone(ZoneKind.DATA)
    cohort = put(data / "sub" / "cohort.csv")
    zone = enclave.plan().zone(ZoneKind.DATA)
    apply_acl_plan(enclave.plan())
    assert repair_path(zone, str(cohort)) is None  # already right
    cohort.chmod(0o664 | 0o004)
    assert can_read(enclave.outsider, cohort) is False  # the zone root still keeps them out...
    drift = repair_path(zone, str(cohort))
    assert drift is not None and drift.path == str(cohort)
    assert drift.found.endswith("o::r--") and drift.set.endswith("o::---")
    assert os.stat(cohort).st_mode & 0o007 == 0  # ...and the file itself is right again
    assert repair_path(zone, "sub/cohort.csv") is None  # relative to the zone root, converged


def test_a1_a_stray_user_entry_is_drift_and_the_walk_repairs_it(enclave: Enclave) -> None:
    data = enclave.zone(ZoneKind.DATA)
    cohort = put(data / "cohort.csv")
    apply_acl_plan(enclave.plan())
    subprocess.run(["setfacl", "-m", f"u:{enclave.outsider.uid}:r", str(cohort)],
                   check=True)
    subprocess.run(["setfacl", "-m", f"u:{enclave.outsider.uid}:rx", str(data)],
                   check=True)
    assert can_read(enclave.outsider, cohort)  # the hole is real
    report = apply_acl_plan(enclave.plan())
    assert report.changed == 2 and report.drift_total == 2
    assert {d.path for d in report.drift} == {str(data), str(cohort)}
    assert all(f"u:{enclave.outsider.uid}:" in d.found for d in report.drift)
    assert not any(f"u:{enclave.outsider.uid}:" in d.set for d in report.drift)
    assert not can_read(enclave.outsider, cohort)
    assert f"user:{enclave.outsider.uid}:" not in getfacl_tree(data)


def test_a_second_run_changes_nothing(enclave: Enclave) -> None:
    for kind in ZoneKind:
        for name in ("a.csv", "d/b.csv", "d/e/run.sh"):
            put(enclave.zone(kind) / name)
    (enclave.zone(ZoneKind.DATA) / "d" / "e" / "run.sh").chmod(0o755)
    first = apply_acl_plan(enclave.plan())
    assert first.changed > 0 and first.errors == []
    second = apply_acl_plan(enclave.plan())
    assert (second.changed, second.drift, second.drift_total, second.errors) == (0, [], 0, [])
    assert second.checked == first.checked
    assert can_write(enclave.alice, enclave.zone(ZoneKind.DATA) / "d" / "e" / "run.sh")
    assert as_user(enclave.alice, f"'{enclave.zone(ZoneKind.DATA)}/d/e/run.sh'").returncode == 0


def test_repair_path_refuses_what_is_not_inside_the_zone(enclave: Enclave) -> None:
    zone = enclave.plan().zone(ZoneKind.DATA)
    data = enclave.zone(ZoneKind.DATA)
    for bad in ("/etc/passwd", f"{data}2/x", f"{data}/../key/x", "../key/x"):
        with pytest.raises(InvalidRequest):
            repair_path(zone, bad)
    assert repair_path(zone, f"{data}/gone.csv") is None


def test_the_zone_root_is_made_root_owned_again(enclave: Enclave) -> None:
    data = enclave.zone(ZoneKind.DATA)
    os.chown(data, enclave.alice.uid, enclave.alice.gid)
    drift = apply_zone_root(enclave.plan().zone(ZoneKind.DATA))
    assert drift is not None and drift.found.startswith(f"owner {enclave.alice.uid}:")
    st = os.stat(data)
    assert (st.st_uid, st.st_gid, st.st_mode & 0o707) == (0, 0, 0o700)
    assert apply_zone_root(enclave.plan().zone(ZoneKind.DATA)) is None


def test_special_files_are_left_alone_and_reported(enclave: Enclave) -> None:
    fifo = enclave.zone(ZoneKind.DATA) / "pipe"
    os.mkfifo(fifo, 0o640)
    os.chmod(fifo, 0o644)
    report = apply_acl_plan(enclave.plan())
    assert report.skipped == 1 and any("fifo" in line for line in report.unusual)
    assert os.stat(fifo).st_mode & 0o777 == 0o644


def test_kinds_limits_the_walk_to_those_zones(enclave: Enclave) -> None:
    data = put(enclave.zone(ZoneKind.DATA) / "a.csv")
    key = put(enclave.zone(ZoneKind.KEY) / "k.csv")
    apply_acl_plan(enclave.plan(), kinds=[ZoneKind.DATA])
    assert os.stat(data).st_mode & 0o007 == 0 and os.stat(key).st_mode & 0o007 == 4


def test_a_file_system_mounted_inside_a_zone_is_not_entered(enclave: Enclave) -> None:
    mount_point = enclave.zone(ZoneKind.DATA) / "mnt"
    mount_point.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m,mode=0755", "tmpfs",
                    str(mount_point)], check=True)
    try:
        inside = put(mount_point / "other.csv")
        report = apply_acl_plan(enclave.plan())
        assert report.skipped == 1 and any("mounted" in line for line in report.unusual)
        assert os.stat(inside).st_mode & 0o777 == 0o644
        assert os.stat(mount_point).st_mode & 0o777 == 0o755
        with pytest.raises(InvalidRequest, match="another file system"):
            repair_path(enclave.plan().zone(ZoneKind.DATA), str(inside))
    finally:
        subprocess.run(["umount", str(mount_point)], check=True)


_RUN_PLAN = """
import json, sys
from agent.access.enforce import apply_acl_plan
from agent.access.plan import AccessPlan, ZoneAccess, ZoneKind
zones = [ZoneAccess("p1", ZoneKind(k), p, frozenset(u)) for k, p, u in json.loads(sys.argv[1])]
print("go", flush=True)
apply_acl_plan(AccessPlan("p1", tuple(zones)))
"""


def test_a_run_killed_half_way_is_completed_by_the_next(enclave: Enclave) -> None:
    data = enclave.zone(ZoneKind.DATA)
    for d in range(20):
        (data / f"d{d}").mkdir()
        for f in range(250):
            (data / f"d{d}" / f"{f}.csv").write_text("x")
    plan = enclave.plan()
    argument = json.dumps([(z.kind.value, z.path, sorted(z.uids)) for z in plan.zones])
    child = subprocess.Popen([sys.executable, "-c", _RUN_PLAN, argument],
                             stdout=subprocess.PIPE, cwd=Path(__file__).parents[2])
    assert child.stdout is not None and child.stdout.readline() == b"go\n"
    deadline = time.monotonic() + 20
    while not os.listxattr(data) and time.monotonic() < deadline:
        time.sleep(0.001)  # the zone root comes first: once it has its ACL the walk is on
    time.sleep(0.02)
    child.send_signal(signal.SIGKILL)
    child.wait()
    files = [data / f"d{d}" / f"{f}.csv" for d in range(20) for f in range(250)]
    done = sum(1 for path in files if os.listxattr(path))
    assert done < len(files), "the run finished before it was killed; nothing was proved"
    apply_acl_plan(plan)
    assert apply_acl_plan(plan).changed == 0
    admitted = plan.zone(ZoneKind.DATA).uids
    for path in files:
        fd = os.open(path, acl.OPEN_ENTRY)
        try:
            found = acl.read_acl(fd, os.fstat(fd).st_mode)
        finally:
            os.close(fd)
        assert {uid for uid, _ in found.spec.users} == admitted and found.spec.other == 0
