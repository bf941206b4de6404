"""Who may do what: one table, pure.

A caller's relation to a project is computed by the shell from the kernel-reported uid and the
access list; this module only answers "may a caller with this relation do this?". Anything not
in the table is refused. A caller with no relation to a project is told the project does not
exist, so the question itself leaks nothing.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum


class Relation(StrEnum):
    ROOT = "root"
    LEADER = "leader"
    MEMBER = "member"
    KEY_CUSTODIAN = "key_custodian"
    AUDITOR = "auditor"
    NONE = "none"


class Action(StrEnum):
    PROJECT_CREATE = "project.create"
    PROJECT_SHOW = "project.show"
    STATUS = "status"
    #: Add or remove a member or key custodian (A1: the leader decides who gets access).
    MEMBER_GRANT = "member.grant"
    MEMBER_REVOKE = "member.revoke"
    #: Appoint or remove an auditor: the operator's act, never the audited leader's (A2).
    AUDITOR_APPOINT = "auditor.appoint"
    AUDITOR_REMOVE = "auditor.remove"
    MEMBER_LIST = "member.list"
    #: Everyone who has or had access, with who granted it and why (A2).
    ACCESS_REVIEW = "access.review"
    #: Compare the zones with the access list and repair them.
    ACCESS_CHECK = "access.check"
    #: Read a project's audit trail: export it, verify it (A5: auditors export these logs).
    #: The leader is left out on purpose: the trail records what the leader did too.
    AUDIT_READ = "audit.read"
    #: Encrypt a zone file in place (S3): whoever opens files in the zone, and root, the
    #: operator (rules encrypt files in place as the daemon).
    DATA_ENCRYPT = "data.encrypt"
    #: Decrypt a project's file (S3): the people its zone admits; never root, the operator.
    DATA_DECRYPT = "data.decrypt"
    #: Destroy a project's keyset for good (S3, crypto-shredding): the operator's act alone.
    KEY_SHRED = "key.shred"
    #: See the key store's state and rotate the master key (S5): the operator's.
    KEY_ADMIN = "key.admin"
    #: See a project's storage violations: the leader answers for them, the auditor checks.
    VIOLATION_READ = "violation.read"
    #: Close a violation with a note saying what was done about it.
    VIOLATION_RESOLVE = "violation.resolve"
    #: Scan a project's zones on demand (S1-S7, D2, D5).
    STORAGE_SCAN = "storage.scan"
    #: Record a delivered dataset and its approved variables (D2): the leader applied for them.
    DATASET_ADD = "dataset.add"
    DATASET_LIST = "dataset.list"
    #: Record the project's legal basis (D1): the operator's act, from the documents.
    APPROVAL_ADD = "approval.add"
    APPROVAL_LIST = "approval.list"
    #: Place and release a legal hold (L5): the operator and the auditors; never the leader,
    #: who may be the one under investigation.
    HOLD_PLACE = "hold.place"
    HOLD_RELEASE = "hold.release"
    HOLD_LIST = "hold.list"
    #: Register a copy kept outside the enclave and confirm its disposal (L2).
    COPY_ADD = "copy.add"
    COPY_CONFIRM = "copy.confirm"
    COPY_LIST = "copy.list"
    #: See what the project's end will bring, and when (L1-L9).
    LIFECYCLE_PLAN = "lifecycle.plan"
    #: End a project early, or move its end later with a REK approval on record (L1).
    PROJECT_END = "project.end"
    #: Carry out now whatever the project-end schedule has due: the operator's act.
    LIFECYCLE_RUN = "lifecycle.run"
    #: Fetch the project's certificate of disposal, once it has been issued (L2).
    LIFECYCLE_CERTIFICATE = "lifecycle.certificate"


_ANYONE = frozenset(Relation)
_INSIDE = frozenset(
    {Relation.ROOT, Relation.LEADER, Relation.MEMBER, Relation.KEY_CUSTODIAN, Relation.AUDITOR}
)

#: The decision table. Adding an action means adding its row here, and a test.
PERMISSIONS: dict[Action, frozenset[Relation]] = {
    Action.PROJECT_CREATE: frozenset({Relation.ROOT}),
    Action.PROJECT_SHOW: _INSIDE,
    Action.STATUS: _ANYONE,
    Action.MEMBER_GRANT: frozenset({Relation.ROOT, Relation.LEADER}),
    Action.MEMBER_REVOKE: frozenset({Relation.ROOT, Relation.LEADER}),
    Action.AUDITOR_APPOINT: frozenset({Relation.ROOT}),
    Action.AUDITOR_REMOVE: frozenset({Relation.ROOT}),
    Action.MEMBER_LIST: _INSIDE,
    Action.ACCESS_REVIEW: frozenset({Relation.ROOT, Relation.LEADER, Relation.AUDITOR}),
    Action.ACCESS_CHECK: frozenset({Relation.ROOT, Relation.LEADER}),
    Action.AUDIT_READ: frozenset({Relation.ROOT, Relation.AUDITOR}),
    Action.DATA_ENCRYPT: frozenset(
        {Relation.ROOT, Relation.LEADER, Relation.MEMBER, Relation.KEY_CUSTODIAN}),
    Action.DATA_DECRYPT: frozenset({Relation.LEADER, Relation.MEMBER, Relation.KEY_CUSTODIAN}),
    Action.KEY_SHRED: frozenset({Relation.ROOT}),
    Action.KEY_ADMIN: frozenset({Relation.ROOT}),
    Action.VIOLATION_READ: frozenset({Relation.ROOT, Relation.LEADER, Relation.AUDITOR}),
    Action.VIOLATION_RESOLVE: frozenset({Relation.ROOT, Relation.LEADER}),
    Action.STORAGE_SCAN: frozenset({Relation.ROOT, Relation.LEADER}),
    Action.DATASET_ADD: frozenset({Relation.ROOT, Relation.LEADER}),
    Action.DATASET_LIST: _INSIDE,
    Action.APPROVAL_ADD: frozenset({Relation.ROOT}),
    Action.APPROVAL_LIST: frozenset({Relation.ROOT, Relation.LEADER, Relation.AUDITOR}),
    Action.HOLD_PLACE: frozenset({Relation.ROOT, Relation.AUDITOR}),
    Action.HOLD_RELEASE: frozenset({Relation.ROOT, Relation.AUDITOR}),
    Action.HOLD_LIST: frozenset({Relation.ROOT, Relation.LEADER, Relation.AUDITOR}),
    Action.COPY_ADD: frozenset({Relation.ROOT, Relation.LEADER}),
    Action.COPY_CONFIRM: frozenset({Relation.ROOT, Relation.LEADER}),
    Action.COPY_LIST: frozenset({Relation.ROOT, Relation.LEADER, Relation.AUDITOR}),
    Action.LIFECYCLE_PLAN: frozenset({Relation.ROOT, Relation.LEADER, Relation.AUDITOR}),
    Action.PROJECT_END: frozenset({Relation.ROOT, Relation.LEADER}),
    Action.LIFECYCLE_RUN: frozenset({Relation.ROOT}),
    Action.LIFECYCLE_CERTIFICATE: frozenset({Relation.ROOT, Relation.LEADER, Relation.AUDITOR}),
}

#: Which action adding or removing each grantable role is.
GRANT_ACTION: dict[str, Action] = {
    "member": Action.MEMBER_GRANT,
    "key_custodian": Action.MEMBER_GRANT,
    "auditor": Action.AUDITOR_APPOINT,
}
REVOKE_ACTION: dict[str, Action] = {
    "member": Action.MEMBER_REVOKE,
    "key_custodian": Action.MEMBER_REVOKE,
    "auditor": Action.AUDITOR_REMOVE,
}


def relation_of(
    caller_uid: int, leader_uid: int | None, active_roles: Iterable[str] = ()
) -> Relation:
    """The strongest relation a caller has to a project (root > leader > roles)."""
    if caller_uid == 0:
        return Relation.ROOT
    if leader_uid is not None and caller_uid == leader_uid:
        return Relation.LEADER
    roles = set(active_roles)
    for relation in (Relation.KEY_CUSTODIAN, Relation.MEMBER, Relation.AUDITOR):
        if relation.value in roles:
            return relation
    return Relation.NONE


def may(action: Action, relation: Relation) -> bool:
    return relation in PERMISSIONS.get(action, frozenset())


def hides_existence(relation: Relation) -> bool:
    """Outsiders learn nothing: a refusal to them reads like 'no such project'."""
    return relation is Relation.NONE
