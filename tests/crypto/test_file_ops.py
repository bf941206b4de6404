"""The daemon side of ``vokter encrypt|decrypt``: who may touch which zone's files (pure, from
the access plan), and what a passed descriptor must be. The whole path, through a real daemon
and real users, is in tests/e2e/test_encrypt_decrypt.py."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.access.permissions import Action, Relation
from agent.access.plan import ProjectZones, ZoneKind, plan_access
from agent.access.rules import Grant
from agent.api.descriptors import checked_file
from agent.crypto.file_ops import (
    may_after_end,
    may_decrypt_elsewhere,
    may_touch,
    opened_path,
)
from agent.errors import InvalidRequest

LEADER, MEMBER, CUSTODIAN, AUDITOR, OUTSIDER = 1001, 1002, 1003, 1004, 1005
PLAN = plan_access(
    ProjectZones(project="p4711", leader_uid=LEADER, data="/z/p4711/data", key="/z/p4711/key",
                 export="/z/p4711/export", quarantine="/z/p4711/quarantine"),
    [Grant(user="m", uid=MEMBER, role="member", expires_at=None),
     Grant(user="k", uid=CUSTODIAN, role="key_custodian", expires_at=None),
     Grant(user="a", uid=AUDITOR, role="auditor", expires_at=None)])
WHO = {0: Relation.ROOT, LEADER: Relation.LEADER, MEMBER: Relation.MEMBER,
       CUSTODIAN: Relation.KEY_CUSTODIAN, AUDITOR: Relation.AUDITOR, OUTSIDER: Relation.NONE}


def allowed(action: Action, kind: ZoneKind) -> set[int]:
    zone = PLAN.zone(kind)
    return {uid for uid, relation in WHO.items() if may_touch(action, relation, uid, zone)}


def test_s3_members_and_the_leader_encrypt_in_data_and_export_zones_and_root_anywhere() -> None:
    for kind in (ZoneKind.DATA, ZoneKind.EXPORT):
        assert allowed(Action.DATA_ENCRYPT, kind) == {0, LEADER, MEMBER}


def test_s6_only_key_custodians_and_root_encrypt_in_the_key_zone() -> None:
    assert allowed(Action.DATA_ENCRYPT, ZoneKind.KEY) == {0, CUSTODIAN}


def test_s3_root_decrypts_nowhere_and_members_never_in_the_key_zone() -> None:
    assert allowed(Action.DATA_DECRYPT, ZoneKind.DATA) == {LEADER, MEMBER}
    assert allowed(Action.DATA_DECRYPT, ZoneKind.EXPORT) == {LEADER, MEMBER}
    assert allowed(Action.DATA_DECRYPT, ZoneKind.KEY) == {CUSTODIAN}
    assert allowed(Action.DATA_DECRYPT, ZoneKind.QUARANTINE) == set()


def test_s6_a_leader_who_is_also_key_custodian_decrypts_in_the_key_zone() -> None:
    plan = plan_access(
        ProjectZones(project="p4711", leader_uid=LEADER, data="/d", key="/k", export="/e",
                     quarantine="/q"),
        [Grant(user="l", uid=LEADER, role="key_custodian", expires_at=None)])
    assert may_touch(Action.DATA_DECRYPT, Relation.LEADER, LEADER, plan.zone(ZoneKind.KEY))


def test_s3_copies_outside_every_zone_are_decrypted_by_the_leader_and_members_only() -> None:
    assert {r for r in Relation if may_decrypt_elsewhere(r)} == {Relation.LEADER,
                                                                 Relation.MEMBER}


def test_l8_after_the_end_only_root_encrypts_and_only_the_leader_decrypts() -> None:
    assert {r for r in Relation if may_after_end(Action.DATA_ENCRYPT, r, leader_reads=True)} \
        == {Relation.ROOT}
    assert {r for r in Relation if may_after_end(Action.DATA_DECRYPT, r, leader_reads=True)} \
        == {Relation.LEADER}
    assert {r for r in Relation
            if may_decrypt_elsewhere(r, ended=True, leader_reads=True)} == {Relation.LEADER}


def test_l8_a_policy_that_takes_the_leaders_reading_away_leaves_no_one_to_decrypt() -> None:
    assert not any(may_after_end(Action.DATA_DECRYPT, r, leader_reads=False) for r in Relation)
    assert not any(may_decrypt_elsewhere(r, ended=True, leader_reads=False) for r in Relation)


@pytest.fixture
def folder(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path


def test_a_passed_descriptor_must_be_a_regular_file_opened_the_right_way(folder: Path) -> None:
    file = folder / "f"
    file.write_bytes(b"x")
    reading = os.open(file, os.O_RDONLY)
    writing = os.open(file, os.O_WRONLY)
    directory = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    read_end, write_end = os.pipe()
    try:
        checked_file(reading, "the file", writing=False)
        checked_file(writing, "the output", writing=True)
        with pytest.raises(InvalidRequest, match="not opened for writing"):
            checked_file(reading, "the output", writing=True)
        with pytest.raises(InvalidRequest, match="not opened for reading"):
            checked_file(writing, "the file", writing=False)
        for one_way in (reading, writing):  # encrypting in place reads and replaces
            with pytest.raises(InvalidRequest, match="not opened for reading and writing"):
                checked_file(one_way, "the file to encrypt", writing=True, reading=True)
        for fd in (directory, read_end):
            with pytest.raises(InvalidRequest, match="not a regular file"):
                checked_file(fd, "the file", writing=False)
    finally:
        for fd in (reading, writing, directory, read_end, write_end):
            os.close(fd)


def test_the_daemon_learns_the_path_from_the_descriptor_and_refuses_a_deleted_file(
        folder: Path) -> None:
    file = folder / "f"
    file.write_bytes(b"x")
    fd = os.open(file, os.O_RDONLY)
    try:
        assert opened_path(fd) == str(file.resolve())
        file.unlink()
        with pytest.raises(InvalidRequest, match="deleted"):
            opened_path(fd)
    finally:
        os.close(fd)
