"""The project's date-shift secret on disk (D4): made once for its owner, never replaced, and
refused when others could read or plant it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from agent.access.acl import write_acl
from agent.access.plan import ZoneAccess, ZoneKind, desired_acl
from agent.anonymise.secret import create_date_secret, read_date_secret
from agent.errors import AlreadyExists, InvalidRequest
from tests.support.users import UserFactory


def test_d4_a_new_secret_is_64_hex_characters_for_the_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "date-secret"
    previous = os.umask(0)
    try:
        create_date_secret(path)
    finally:
        os.umask(previous)
    assert path.stat().st_mode & 0o777 == 0o600
    text = path.read_text()
    assert len(text) == 64
    assert read_date_secret(path) == bytes.fromhex(text)
    other = tmp_path / "other-secret"
    create_date_secret(other)
    assert read_date_secret(other) != read_date_secret(path)


def test_d4_an_existing_secret_is_never_replaced(tmp_path: Path) -> None:
    path = tmp_path / "date-secret"
    create_date_secret(path)
    before = path.read_bytes()
    with pytest.raises(AlreadyExists, match="exists already"):
        create_date_secret(path)
    assert path.read_bytes() == before


def test_d4_a_secret_through_a_symlink_is_neither_made_nor_read(tmp_path: Path) -> None:
    real = tmp_path / "real"
    create_date_secret(real)
    link = tmp_path / "link"
    link.symlink_to(real)
    with pytest.raises(InvalidRequest, match="is a symlink"):
        read_date_secret(link)
    dangling = tmp_path / "dangling"
    dangling.symlink_to(tmp_path / "nowhere")
    with pytest.raises(AlreadyExists):
        create_date_secret(dangling)
    assert not (tmp_path / "nowhere").exists()


def test_d4_a_secret_in_a_missing_folder_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidRequest, match="cannot create"):
        create_date_secret(tmp_path / "no-such-folder" / "secret")


@pytest.mark.parametrize("mode", [0o604, 0o602, 0o606, 0o644, 0o666])
def test_d4_a_secret_open_to_others_is_refused(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "date-secret"
    create_date_secret(path)
    path.chmod(mode)
    with pytest.raises(InvalidRequest) as raised:
        read_date_secret(path)
    assert f"open to others (mode {mode:04o})" in raised.value.message
    assert raised.value.rule == "D4"


def test_d4_a_secret_shared_with_the_group_only_is_read(tmp_path: Path) -> None:
    path = tmp_path / "date-secret"
    path.write_text("ab" * 32 + "\n")
    path.chmod(0o640)
    assert read_date_secret(path) == bytes([0xAB] * 32)


def test_d4_a_secret_under_the_key_zones_acl_is_read_by_its_custodian_and_nobody_else(
        unix_users: UserFactory) -> None:
    # The key zone's ACL as vokterd plans it: one entry per custodian, the group bits of the
    # mode are its mask. The custodian reads the secret as themselves; a member cannot.
    custodian, member = unix_users.create("vkc"), unix_users.create("vkm")
    root = Path(tempfile.mkdtemp(prefix="vokter-d4-"))
    try:
        root.chmod(0o755)
        path = root / "date-shift.secret"
        create_date_secret(path)
        zone = ZoneAccess("p1", ZoneKind.KEY, str(root), frozenset({custodian.uid}))
        fd = os.open(path, os.O_RDONLY)
        try:
            owner_bits = (path.stat().st_mode >> 6) & 0o7
            write_acl(fd, desired_acl(zone, is_dir=False, executable=False), owner_bits)
        finally:
            os.close(fd)
        assert path.stat().st_mode & 0o777 == 0o660
        script = ("import sys; from agent.anonymise.secret import read_date_secret; "
                  "print(read_date_secret(__import__('pathlib').Path(sys.argv[1])).hex())")
        as_custodian = run_as(custodian.name, script, path)
        assert as_custodian.returncode == 0, as_custodian.stderr
        assert as_custodian.stdout.strip() == read_date_secret(path).hex()
        as_member = run_as(member.name, script, path)
        assert as_member.returncode != 0
        assert "Permission denied" in as_member.stderr
    finally:
        shutil.rmtree(root)


def run_as(user: str, script: str, path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["runuser", "-u", user, "--", sys.executable, "-c", script, str(path)],
                          capture_output=True, text=True, timeout=120, check=False,
                          cwd=REPO)


REPO = Path(__file__).resolve().parents[2]


def test_d4_a_missing_secret_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidRequest, match="does not exist"):
        read_date_secret(tmp_path / "absent")


def test_d4_a_folder_is_no_secret(tmp_path: Path) -> None:
    (tmp_path / "folder").mkdir(mode=0o700)
    with pytest.raises(InvalidRequest, match="not a regular file"):
        read_date_secret(tmp_path / "folder")


@pytest.mark.parametrize("content", ["", "ab" * 31, "ab" * 33, "zz" * 32, "ab" * 32 + "\n\n",
                                     " " + "ab" * 32])
def test_d4_a_secret_that_is_not_64_hex_characters_is_refused(tmp_path: Path,
                                                              content: str) -> None:
    path = tmp_path / "date-secret"
    path.write_text(content)
    path.chmod(0o600)
    with pytest.raises(InvalidRequest, match="does not hold 64 hex characters") as raised:
        read_date_secret(path)
    assert content.strip() == "" or content.strip()[:8] not in raised.value.one_line()
