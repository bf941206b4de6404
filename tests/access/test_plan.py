"""What the file system must allow (S5, S6, A2): ``plan_access``, the ACLs and the gate's answer.

Both enforcement layers read their answer from these functions, so every zone/relation cell and
every path-matching edge is pinned here, with properties checked over random access lists.
"""

from __future__ import annotations

from types import MappingProxyType

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.access.permissions import Relation
from agent.access.plan import (
    EMPTY_VIEW,
    EXECUTE,
    READ,
    WRITE,
    ZONE_RELATIONS,
    AccessPlan,
    AclSpec,
    GateView,
    ProjectZones,
    ZoneAccess,
    ZoneKind,
    build_gate_view,
    decide_open,
    desired_acl,
    desired_default_acl,
    plan_access,
)
from agent.access.rules import Grant

LEADER, KARI, OLA, NINA, PER = 1000, 1001, 1002, 1003, 1004


def zones_of(project: str, leader_uid: int | None = LEADER, root: str = "/z") -> ProjectZones:
    base = f"{root}/{project}"
    return ProjectZones(project, leader_uid, f"{base}/data", f"{base}/key", f"{base}/export",
                        f"{base}/quarantine")


P1 = zones_of("p1")
GRANTS = (
    Grant("kari", KARI, "member"),
    Grant("ola", OLA, "key_custodian"),
    Grant("nina", NINA, "auditor"),
)


def uids(plan: AccessPlan, kind: ZoneKind) -> frozenset[int]:
    return plan.zone(kind).uids


def zone(kind: ZoneKind, path: str, admitted: set[int], project: str = "p1") -> ZoneAccess:
    return ZoneAccess(project, kind, path, frozenset(admitted))


# --- the zone table -------------------------------------------------------------------------------


def test_s5_s6_a2_zone_table() -> None:
    assert dict(ZONE_RELATIONS) == {
        ZoneKind.DATA: {Relation.LEADER, Relation.MEMBER},
        ZoneKind.KEY: {Relation.KEY_CUSTODIAN},
        ZoneKind.EXPORT: {Relation.LEADER, Relation.MEMBER},
        ZoneKind.QUARANTINE: set(),
    }
    assert set(ZONE_RELATIONS) == set(ZoneKind)


def test_a2_auditor_opens_no_zone_in_the_table() -> None:
    assert all(Relation.AUDITOR not in rels for rels in ZONE_RELATIONS.values())


def test_zone_table_cannot_be_changed_at_run_time() -> None:
    with pytest.raises(TypeError):
        ZONE_RELATIONS[ZoneKind.QUARANTINE] = frozenset({Relation.MEMBER})  # type: ignore[index]


# --- plan_access ---------------------------------------------------------------------------------


def test_plan_has_one_zone_per_kind_with_the_project_paths() -> None:
    plan = plan_access(P1, GRANTS)
    assert plan.project == "p1"
    assert [z.kind for z in plan.zones] == list(ZoneKind)
    assert {z.kind: z.path for z in plan.zones} == P1.paths()
    assert all(z.project == "p1" for z in plan.zones)


def test_a1_leader_and_members_are_in_data_and_export() -> None:
    plan = plan_access(P1, GRANTS)
    assert uids(plan, ZoneKind.DATA) == {LEADER, KARI}
    assert uids(plan, ZoneKind.EXPORT) == {LEADER, KARI}


def test_s5_key_custodians_only_in_key_zone() -> None:
    plan = plan_access(P1, GRANTS)
    assert uids(plan, ZoneKind.KEY) == {OLA}
    assert OLA not in uids(plan, ZoneKind.DATA) | uids(plan, ZoneKind.EXPORT)


def test_s6_leader_and_members_never_in_key_zone() -> None:
    plan = plan_access(P1, GRANTS)
    assert not {LEADER, KARI} & uids(plan, ZoneKind.KEY)


def test_a2_auditor_never_reaches_data() -> None:
    plan = plan_access(P1, GRANTS)
    assert all(NINA not in z.uids for z in plan.zones)


def test_quarantine_admits_nobody() -> None:
    plan = plan_access(P1, GRANTS)
    assert uids(plan, ZoneKind.QUARANTINE) == frozenset()


def test_root_uid_0_is_never_listed() -> None:
    grants = [Grant("root", 0, "member"), Grant("root", 0, "key_custodian")]
    plan = plan_access(zones_of("p1", leader_uid=0), grants)
    assert all(0 not in z.uids for z in plan.zones)
    assert all(z.uids == frozenset() for z in plan.zones)


def test_project_without_leader_plans_only_its_grants() -> None:
    plan = plan_access(zones_of("p1", leader_uid=None), [Grant("kari", KARI, "member")])
    assert uids(plan, ZoneKind.DATA) == {KARI}
    assert LEADER not in uids(plan, ZoneKind.EXPORT)


def test_no_grants_leaves_only_the_leader() -> None:
    plan = plan_access(P1, [])
    assert uids(plan, ZoneKind.DATA) == uids(plan, ZoneKind.EXPORT) == {LEADER}
    assert uids(plan, ZoneKind.KEY) == uids(plan, ZoneKind.QUARANTINE) == frozenset()


def test_a_user_with_two_relations_gets_the_union() -> None:
    """Only reachable where policy lets members hold the key; the plan then opens both."""
    grants = [Grant("kari", KARI, "member"), Grant("kari", KARI, "key_custodian")]
    plan = plan_access(P1, grants)
    assert KARI in uids(plan, ZoneKind.DATA)
    assert KARI in uids(plan, ZoneKind.EXPORT)
    assert KARI in uids(plan, ZoneKind.KEY)
    assert KARI not in uids(plan, ZoneKind.QUARANTINE)


def test_leader_who_is_also_key_custodian_opens_key_and_data() -> None:
    plan = plan_access(P1, [Grant("leila", LEADER, "key_custodian")])
    assert LEADER in uids(plan, ZoneKind.DATA) and LEADER in uids(plan, ZoneKind.KEY)


def test_a2_auditor_with_a_member_grant_still_reaches_data_through_it() -> None:
    """The plan follows the grants it is given; check_grant keeps this combination out."""
    plan = plan_access(P1, [Grant("nina", NINA, "auditor"), Grant("nina", NINA, "member")])
    assert NINA in uids(plan, ZoneKind.DATA)
    assert NINA not in uids(plan, ZoneKind.KEY)


def test_unknown_role_in_a_grant_opens_nothing() -> None:
    plan = plan_access(P1, [Grant("x", PER, "admin"), Grant("y", NINA, "leader")])
    assert all(PER not in z.uids for z in plan.zones)
    # A stored "leader" grant counts as leader.
    assert NINA in uids(plan, ZoneKind.DATA)


def test_plan_accepts_a_one_shot_iterator() -> None:
    plan = plan_access(P1, iter(GRANTS))
    assert uids(plan, ZoneKind.DATA) == {LEADER, KARI}
    assert uids(plan, ZoneKind.KEY) == {OLA}


_UIDS = st.sampled_from([0, LEADER, KARI, OLA, NINA, PER])
_GRANTS = st.lists(
    st.builds(Grant, user=st.just("u"), uid=_UIDS,
              role=st.sampled_from(["member", "key_custodian", "auditor", "leader", "other"])),
    max_size=15,
)


@given(grants=_GRANTS, leader=st.one_of(st.none(), _UIDS))
def test_plan_invariants_over_random_grants(grants: list[Grant], leader: int | None) -> None:
    plan = plan_access(zones_of("p1", leader_uid=leader), grants)
    roles: dict[int, set[str]] = {}
    for g in grants:
        roles.setdefault(g.uid, set()).add(g.role)
    if leader is not None:
        roles.setdefault(leader, set()).add("leader")
    every = {uid for uid in roles if uid != 0}

    key = {uid for uid in every if "key_custodian" in roles[uid]}
    data = {uid for uid in every if roles[uid] & {"leader", "member"}}
    assert uids(plan, ZoneKind.KEY) == key, "in the key zone iff key_custodian (S5)"
    assert uids(plan, ZoneKind.DATA) == data, "in the data zone iff leader or member"
    assert uids(plan, ZoneKind.EXPORT) == data
    assert uids(plan, ZoneKind.QUARANTINE) == frozenset()
    auditor_only = {uid for uid in every if roles[uid] <= {"auditor", "other"}}
    for z in plan.zones:
        assert 0 not in z.uids
        assert not z.uids & auditor_only, "an auditor-only uid reaches a zone (A2)"
        assert z.uids <= every


# --- desired_acl ----------------------------------------------------------------------------------


def test_acl_bits_constants() -> None:
    assert (READ, WRITE, EXECUTE) == (4, 2, 1)


@pytest.mark.parametrize(
    ("is_dir", "executable", "bits"),
    [(True, False, 7), (True, True, 7), (False, True, 7), (False, False, 6)],
)
def test_acl_rwx_capital_x_only_on_dirs_and_executable_files(
    is_dir: bool, executable: bool, bits: int
) -> None:
    spec = desired_acl(zone(ZoneKind.DATA, "/z/p1/data", {KARI, LEADER}), is_dir=is_dir,
                       executable=executable)
    assert spec == AclSpec(users=((LEADER, bits), (KARI, bits)), group=0, mask=bits, other=0)


def test_acl_users_are_sorted_by_uid() -> None:
    spec = desired_acl(zone(ZoneKind.DATA, "/d", {PER, KARI, NINA, LEADER, OLA}), is_dir=False,
                       executable=False)
    assert [uid for uid, _ in spec.users] == [LEADER, KARI, OLA, NINA, PER]


@pytest.mark.parametrize(("is_dir", "executable"), [(True, True), (False, False), (False, True)])
def test_acl_for_a_zone_admitting_nobody_has_mask_0_and_no_users(
    is_dir: bool, executable: bool
) -> None:
    spec = desired_acl(zone(ZoneKind.QUARANTINE, "/q", set()), is_dir=is_dir,
                       executable=executable)
    assert spec == AclSpec(users=(), group=0, mask=0, other=0)


def test_default_acl_is_the_directory_acl() -> None:
    z = zone(ZoneKind.KEY, "/k", {OLA, KARI})
    assert desired_default_acl(z) == desired_acl(z, is_dir=True, executable=False)
    assert desired_default_acl(z) == AclSpec(users=((KARI, 7), (OLA, 7)), group=0, mask=7,
                                             other=0)
    assert desired_default_acl(zone(ZoneKind.QUARANTINE, "/q", set())) == AclSpec((), 0, 0, 0)


@given(
    admitted=st.frozensets(st.integers(1, 2**31), max_size=10),
    is_dir=st.booleans(),
    executable=st.booleans(),
)
def test_acl_invariants(admitted: frozenset[int], is_dir: bool, executable: bool) -> None:
    spec = desired_acl(zone(ZoneKind.DATA, "/d", set(admitted)), is_dir=is_dir,
                       executable=executable)
    assert spec.group == 0 and spec.other == 0
    assert [uid for uid, _ in spec.users] == sorted(admitted)
    union = 0
    for _, bits in spec.users:
        assert bits & (READ | WRITE) == READ | WRITE
        assert bool(bits & EXECUTE) is (is_dir or executable)
        union |= bits
    assert spec.mask == union, "the mask must equal the named users' bits, never cut them"


# --- GateView.zone_of / build_gate_view --------------------------------------------------------


def _view(*projects: ProjectZones) -> GateView:
    return build_gate_view(plan_access(p, GRANTS) for p in projects)


def test_build_gate_view_keys_every_zone_by_path() -> None:
    view = _view(P1, zones_of("p2"))
    assert set(view.zones) == {f"/z/{p}/{k}" for p in ("p1", "p2") for k in
                               ("data", "key", "export", "quarantine")}
    assert view.zones["/z/p2/key"].kind is ZoneKind.KEY
    assert view.zones["/z/p2/key"].project == "p2"


def test_gate_view_is_read_only() -> None:
    view = _view(P1)
    with pytest.raises(TypeError):
        view.zones["/elsewhere"] = view.zones["/z/p1/data"]  # type: ignore[index]


def test_empty_view_has_no_zones() -> None:
    assert EMPTY_VIEW.zones == {}
    assert EMPTY_VIEW.zone_of("/z/p1/data/x") is None
    assert build_gate_view([]).zones == {}


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/z/p1/data", "/z/p1/data"),
        ("/z/p1/data/", "/z/p1/data"),
        ("/z/p1/data//", "/z/p1/data"),
        ("/z/p1/data/x.csv", "/z/p1/data"),
        ("/z/p1/data/a/b/c/d.parquet", "/z/p1/data"),
        ("/z/p1/key/linkage.csv", "/z/p1/key"),
        ("/z/p1/quarantine/x", "/z/p1/quarantine"),
        ("/z/p10/data/x", "/z/p10/data"),
    ],
)
def test_zone_of_finds_the_zone_holding_a_path(path: str, expected: str) -> None:
    found = _view(P1, zones_of("p10")).zone_of(path)
    assert found is not None and found.path == expected


@pytest.mark.parametrize(
    "path",
    [
        "/z/p1/data2/x",
        "/z/p1/data2",
        "/z/p1/dat",
        "/z/p1/datax",
        "/z/p1",
        "/z/p1/",
        "/z",
        "/",
        "/z/p2/data/x",
        "/home/kari/data",
        "/z/p1/keys/x",
    ],
)
def test_zone_of_matches_whole_path_components_only(path: str) -> None:
    assert _view(P1).zone_of(path) is None


def test_zone_of_prefers_the_longest_prefix_for_nested_zones() -> None:
    outer = zone(ZoneKind.DATA, "/z/p1/data", {KARI})
    inner = zone(ZoneKind.QUARANTINE, "/z/p1/data/q", set())
    view = GateView(MappingProxyType({outer.path: outer, inner.path: inner}))
    assert view.zone_of("/z/p1/data/q/x") is inner
    assert view.zone_of("/z/p1/data/q") is inner
    assert view.zone_of("/z/p1/data/qq") is outer
    assert view.zone_of("/z/p1/data/x/q") is outer


def test_zone_path_with_trailing_slash_is_still_found() -> None:
    project = ProjectZones("p1", LEADER, "/z/p1/data/", "/z/p1/key//", "/z/p1/export",
                           "/z/p1/quarantine")
    view = build_gate_view([plan_access(project, GRANTS)])
    found = view.zone_of("/z/p1/data/x")
    assert found is not None and found.kind is ZoneKind.DATA
    found = view.zone_of("/z/p1/key")
    assert found is not None and found.kind is ZoneKind.KEY
    assert view.zone_of("/z/p1/data2") is None


def test_zone_at_the_root_directory_is_found() -> None:
    project = ProjectZones("p1", LEADER, "/", "/k", "/e", "/q")
    view = build_gate_view([plan_access(project, GRANTS)])
    found = view.zone_of("/etc/passwd")
    assert found is not None and found.kind is ZoneKind.DATA


_COMPONENTS = st.sampled_from(["a", "b", "ab", "a2", "z"])
_PARTS = st.lists(_COMPONENTS, min_size=1, max_size=4).map(tuple)


@given(
    zone_parts=st.sets(_PARTS, max_size=8),
    probe=st.lists(_COMPONENTS, max_size=6).map(tuple),
    trailing=st.sampled_from(["", "/", "//"]),
)
def test_zone_of_is_the_longest_component_prefix(
    zone_parts: set[tuple[str, ...]], probe: tuple[str, ...], trailing: str
) -> None:
    zones = {
        "/" + "/".join(parts): zone(ZoneKind.DATA, "/" + "/".join(parts), set())
        for parts in zone_parts
    }
    view = GateView(MappingProxyType(zones))
    path = "/" + "/".join(probe) + (trailing if probe else "")
    prefixes = [parts for parts in zone_parts if probe[: len(parts)] == parts]
    found = view.zone_of(path)
    if not prefixes:
        assert found is None
    else:
        best = max(prefixes, key=len)
        assert found is zones["/" + "/".join(best)]


# --- decide_open ---------------------------------------------------------------------------------


VIEW = _view(P1)


@pytest.mark.parametrize(
    "path",
    ["/z/p1/data/x", "/z/p1/key/linkage.csv", "/z/p1/export/t.csv", "/z/p1/quarantine/x",
     "/etc/passwd", "/"],
)
def test_root_passes_everywhere(path: str) -> None:
    decision = decide_open(VIEW, path, 0)
    assert decision.allow is True
    assert decision.zone is VIEW.zone_of(path)


@pytest.mark.parametrize("uid", [LEADER, KARI, OLA, NINA, PER, 65534])
@pytest.mark.parametrize("path", ["/etc/passwd", "/home/kari/x", "/z/p1/data2/x", "/z/p1"])
def test_outside_every_zone_passes(path: str, uid: int) -> None:
    decision = decide_open(VIEW, path, uid)
    assert decision.allow is True
    assert decision.zone is None


@pytest.mark.parametrize(
    ("kind", "allowed"),
    [
        ("data", {LEADER, KARI}),
        ("export", {LEADER, KARI}),
        ("key", {OLA}),
        ("quarantine", set()),
    ],
)
@pytest.mark.parametrize("uid", [LEADER, KARI, OLA, NINA, PER])
def test_inside_a_zone_only_admitted_uids_open(kind: str, allowed: set[int], uid: int) -> None:
    decision = decide_open(VIEW, f"/z/p1/{kind}/sub/file.csv", uid)
    assert decision.allow is (uid in allowed)
    assert decision.zone is not None and decision.zone.kind is ZoneKind(kind)


def test_a2_auditor_is_refused_in_every_zone() -> None:
    for kind in ZoneKind:
        assert decide_open(VIEW, f"/z/p1/{kind}/f", NINA).allow is False


def test_s6_member_is_refused_in_the_key_zone() -> None:
    assert decide_open(VIEW, "/z/p1/key/linkage.csv", KARI).allow is False
    assert decide_open(VIEW, "/z/p1/key", KARI).allow is False


def test_s5_key_custodian_is_refused_in_the_data_zone() -> None:
    assert decide_open(VIEW, "/z/p1/data/income.csv", OLA).allow is False


def test_member_of_one_project_is_refused_in_another() -> None:
    view = build_gate_view([
        plan_access(P1, [Grant("kari", KARI, "member")]),
        plan_access(zones_of("p2", leader_uid=OLA), []),
    ])
    assert decide_open(view, "/z/p1/data/x", KARI).allow is True
    assert decide_open(view, "/z/p2/data/x", KARI).allow is False
    assert decide_open(view, "/z/p2/data/x", OLA).allow is True


@given(
    grants=_GRANTS,
    uid=_UIDS,
    kind=st.sampled_from(list(ZoneKind)),
    tail=st.sampled_from(["", "/", "/f", "/a/b/c"]),
)
def test_gate_agrees_with_the_plan(grants: list[Grant], uid: int, kind: ZoneKind,
                                   tail: str) -> None:
    """The gate and the ACLs read the same plan, so they cannot disagree."""
    plan = plan_access(P1, grants)
    decision = decide_open(build_gate_view([plan]), f"/z/p1/{kind}{tail}", uid)
    assert decision.zone == plan.zone(kind)
    acl_users = {u for u, _ in desired_acl(plan.zone(kind), is_dir=False, executable=False).users}
    assert decision.allow is (uid == 0 or uid in acl_users)


def test_l8_after_the_end_only_the_leader_reads_and_only_the_data_zone() -> None:
    from agent.access.plan import READ, WRITE, desired_acl

    zones = ProjectZones("p1", 1000, "/z/data", "/z/key", "/z/export", "/z/q", ended=True)
    plan = plan_access(zones, [Grant("bob", 1001, "member"), Grant("kari", 1002,
                                                                    "key_custodian")])
    data = plan.zone(ZoneKind.DATA)
    assert data.uids == frozenset() and data.readers == frozenset({1000})
    assert all(not zone.admits(1001) and not zone.admits(1002) for zone in plan.zones)
    assert not plan.zone(ZoneKind.KEY).admits(1000)
    acl = desired_acl(data, is_dir=False, executable=False)
    assert acl.users == ((1000, READ),) and not acl.mask & WRITE
    unread = plan_access(ProjectZones("p1", 1000, "/z/data", "/z/key", "/z/export", "/z/q",
                                      ended=True, leader_reads_after_end=False), [])
    assert not any(zone.admits(1000) for zone in unread.zones)
