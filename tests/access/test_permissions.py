"""Who may do what: the PERMISSIONS table, checked cell by cell against a matrix written out here.

Adding an action or a relation without adding its row below makes these tests fail.
"""

from __future__ import annotations

import itertools

import pytest

from agent.access.permissions import (
    PERMISSIONS,
    Action,
    Relation,
    hides_existence,
    may,
    relation_of,
)

R, L, M, K, A, N = (Relation.ROOT, Relation.LEADER, Relation.MEMBER, Relation.KEY_CUSTODIAN,
                    Relation.AUDITOR, Relation.NONE)
COLUMNS = (R, L, M, K, A, N)

#: action -> may (ROOT, LEADER, MEMBER, KEY_CUSTODIAN, AUDITOR, NONE)
EXPECTED: dict[Action, tuple[bool, bool, bool, bool, bool, bool]] = {
    #                       root   leader member custod auditor none
    Action.PROJECT_CREATE: (True, False, False, False, False, False),
    Action.PROJECT_SHOW:   (True, True,  True,  True,  True,  False),
    Action.STATUS:         (True, True,  True,  True,  True,  True),
    Action.MEMBER_GRANT:   (True, True,  False, False, False, False),
    Action.MEMBER_REVOKE:  (True, True,  False, False, False, False),
    Action.AUDITOR_APPOINT: (True, False, False, False, False, False),
    Action.AUDITOR_REMOVE: (True, False, False, False, False, False),
    Action.MEMBER_LIST:    (True, True,  True,  True,  True,  False),
    Action.ACCESS_REVIEW:  (True, True,  False, False, True,  False),
    Action.ACCESS_CHECK:   (True, True,  False, False, False, False),
    Action.AUDIT_READ:     (True, False, False, False, True,  False),
    Action.DATA_ENCRYPT:   (True, True,  True,  True,  False, False),
    Action.DATA_DECRYPT:   (False, True, True,  True,  False, False),
    Action.KEY_SHRED:      (True, False, False, False, False, False),
    Action.KEY_ADMIN:      (True, False, False, False, False, False),
    Action.VIOLATION_READ: (True, True,  False, False, True,  False),
    Action.VIOLATION_RESOLVE: (True, True, False, False, False, False),
    Action.STORAGE_SCAN:   (True, True,  False, False, False, False),
    Action.DATASET_ADD:    (True, True,  False, False, False, False),
    Action.DATASET_LIST:   (True, True,  True,  True,  True,  False),
    Action.APPROVAL_ADD:   (True, False, False, False, False, False),
    Action.APPROVAL_LIST:  (True, True,  False, False, True,  False),
    Action.HOLD_PLACE:     (True, False, False, False, True,  False),
    Action.HOLD_RELEASE:   (True, False, False, False, True,  False),
    Action.HOLD_LIST:      (True, True,  False, False, True,  False),
    Action.COPY_ADD:       (True, True,  False, False, False, False),
    Action.COPY_CONFIRM:   (True, True,  False, False, False, False),
    Action.COPY_LIST:      (True, True,  False, False, True,  False),
    Action.LIFECYCLE_PLAN: (True, True,  False, False, True,  False),
    Action.PROJECT_END:    (True, True,  False, False, False, False),
    Action.LIFECYCLE_RUN:  (True, False, False, False, False, False),
    Action.LIFECYCLE_CERTIFICATE: (True, True, False, False, True, False),
}


def test_the_matrix_covers_every_action_and_relation() -> None:
    assert set(EXPECTED) == set(Action)
    assert set(COLUMNS) == set(Relation) and len(COLUMNS) == len(Relation)
    assert set(PERMISSIONS) == set(Action)


@pytest.mark.parametrize(("action", "relation"), list(itertools.product(Action, Relation)),
                         ids=lambda v: str(v))
def test_may_matches_the_matrix(action: Action, relation: Relation) -> None:
    assert may(action, relation) is EXPECTED[action][COLUMNS.index(relation)]


def test_only_root_creates_projects() -> None:
    assert [r for r in Relation if may(Action.PROJECT_CREATE, r)] == [Relation.ROOT]


def test_everyone_but_outsiders_sees_a_project() -> None:
    assert {r for r in Relation if not may(Action.PROJECT_SHOW, r)} == {Relation.NONE}


def test_everyone_may_ask_for_status() -> None:
    assert all(may(Action.STATUS, r) for r in Relation)


def test_an_action_missing_from_the_table_is_refused_to_all() -> None:
    saved = PERMISSIONS.pop(Action.STATUS)
    try:
        assert not any(may(Action.STATUS, r) for r in Relation)
    finally:
        PERMISSIONS[Action.STATUS] = saved


LEADER_UID = 1001
CALLER = 2002


@pytest.mark.parametrize(
    ("caller", "leader", "roles", "expected"),
    [
        (0, None, [], R),
        (0, 0, ["member", "key_custodian", "auditor"], R),  # root above everything
        (0, LEADER_UID, ["auditor"], R),
        (LEADER_UID, LEADER_UID, ["member", "key_custodian", "auditor"], L),
        (LEADER_UID, LEADER_UID, [], L),
        (CALLER, LEADER_UID, ["member", "key_custodian", "auditor"], K),
        (CALLER, LEADER_UID, ["auditor", "key_custodian"], K),
        (CALLER, LEADER_UID, ["auditor", "member"], M),
        (CALLER, LEADER_UID, ["member"], M),
        (CALLER, LEADER_UID, ["auditor"], A),
        (CALLER, LEADER_UID, [], N),
        (CALLER, None, [], N),
        (CALLER, LEADER_UID, ["admin", "owner", "root"], N),  # unknown roles grant nothing
        (CALLER, LEADER_UID, ["Member"], N),
    ],
)
def test_relation_of_takes_the_strongest_relation(
    caller: int, leader: int | None, roles: list[str], expected: Relation
) -> None:
    """root > leader > key_custodian > member > auditor > none."""
    assert relation_of(caller, leader, roles) is expected


def test_relation_of_accepts_any_iterable_of_roles() -> None:
    assert relation_of(CALLER, LEADER_UID, (r for r in ["auditor", "member"])) is M
    assert relation_of(CALLER, LEADER_UID) is N


def test_relation_of_never_grants_root_to_a_non_zero_uid() -> None:
    for uid in (1, 65534, 2**31 - 1, -1):
        assert relation_of(uid, uid, ["member"]) is not R


@pytest.mark.parametrize("relation", list(Relation), ids=str)
def test_only_outsiders_are_told_a_project_does_not_exist(relation: Relation) -> None:
    assert hides_existence(relation) is (relation is Relation.NONE)


def test_relation_and_action_names_are_stable() -> None:
    """They appear in audit records and answers; renaming one is a contract change."""
    assert [r.value for r in Relation] == [
        "root", "leader", "member", "key_custodian", "auditor", "none"]
    assert [a.value for a in Action] == [
        "project.create", "project.show", "status", "member.grant", "member.revoke",
        "auditor.appoint", "auditor.remove", "member.list", "access.review", "access.check",
        "audit.read", "data.encrypt", "data.decrypt", "key.shred", "key.admin",
        "violation.read", "violation.resolve", "storage.scan", "dataset.add", "dataset.list",
        "approval.add", "approval.list", "hold.place", "hold.release", "hold.list", "copy.add",
        "copy.confirm", "copy.list", "lifecycle.plan", "project.end", "lifecycle.run",
        "lifecycle.certificate"]


def test_l5_the_leader_can_neither_place_nor_release_a_hold() -> None:
    for action in (Action.HOLD_PLACE, Action.HOLD_RELEASE):
        assert {r for r in Relation if may(action, r)} == {Relation.ROOT, Relation.AUDITOR}


def test_a1_only_root_and_the_leader_grant_and_revoke_data_and_key_access() -> None:
    for action in (Action.MEMBER_GRANT, Action.MEMBER_REVOKE):
        assert {r for r in Relation if may(action, r)} == {Relation.ROOT, Relation.LEADER}


def test_a2_only_root_appoints_or_removes_auditors() -> None:
    for action in (Action.AUDITOR_APPOINT, Action.AUDITOR_REMOVE):
        assert {r for r in Relation if may(action, r)} == {Relation.ROOT}


def test_a2_the_auditor_reviews_access_but_members_do_not() -> None:
    assert may(Action.ACCESS_REVIEW, Relation.AUDITOR)
    assert not may(Action.ACCESS_REVIEW, Relation.MEMBER)
    assert may(Action.MEMBER_LIST, Relation.MEMBER)


def test_each_grantable_role_maps_to_its_grant_and_revoke_action() -> None:
    from agent.access.permissions import GRANT_ACTION, REVOKE_ACTION
    from agent.access.rules import GRANTABLE_ROLES

    assert set(GRANT_ACTION) == set(REVOKE_ACTION) == set(GRANTABLE_ROLES)
    assert GRANT_ACTION["auditor"] is Action.AUDITOR_APPOINT
    assert REVOKE_ACTION["key_custodian"] is Action.MEMBER_REVOKE


def test_a5_only_root_and_the_project_auditor_read_its_audit_trail() -> None:
    assert [r for r in COLUMNS if may(Action.AUDIT_READ, r)] == [R, A]


def test_s3_root_and_everyone_a_zone_admits_encrypt_but_not_auditors_or_outsiders() -> None:
    assert [r for r in COLUMNS if may(Action.DATA_ENCRYPT, r)] == [R, L, M, K]


def test_s3_root_the_operator_never_decrypts_project_files() -> None:
    assert [r for r in COLUMNS if may(Action.DATA_DECRYPT, r)] == [L, M, K]


def test_s4_violations_are_seen_by_the_leader_and_auditor_and_closed_by_the_leader() -> None:
    assert [r for r in COLUMNS if may(Action.VIOLATION_READ, r)] == [R, L, A]
    assert [r for r in COLUMNS if may(Action.VIOLATION_RESOLVE, r)] == [R, L]


def test_d2_the_leader_records_delivered_datasets_and_every_insider_lists_them() -> None:
    assert [r for r in COLUMNS if may(Action.DATASET_ADD, r)] == [R, L]
    assert [r for r in COLUMNS if may(Action.DATASET_LIST, r)] == [R, L, M, K, A]
