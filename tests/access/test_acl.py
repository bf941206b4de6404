"""The ACL adapter against the real kernel: what it reads and writes is what getfacl shows.

The cheap check in ``agent.access.enforce`` relies on ``encode`` predicting the kernel's bytes
exactly; these tests pin that prediction to a real ext4 inode, so a kernel or libacl that
stores ACLs differently makes them fail instead of making every check silently slow or wrong.

Every subprocess here runs a fixed argv list (never shell=True) naming only the test's own
files and users.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from agent.access import acl
from agent.access.plan import AclSpec, ZoneAccess, ZoneKind, desired_acl, desired_default_acl

pytestmark = pytest.mark.root

ZONE = ZoneAccess("p1", ZoneKind.DATA, "/unused", frozenset({1001, 1003}))


@contextmanager
def opened(path: Path) -> Iterator[int]:
    fd = os.open(path, acl.OPEN_ENTRY)
    try:
        yield fd
    finally:
        os.close(fd)


def getfacl(path: Path, *options: str) -> str:
    """getfacl's short numeric form, comma-joined like ``acl.FoundAcl.text``."""
    out = subprocess.run(
        ["getfacl", "--omit-header", "--numeric", "--no-effective", *options, str(path)],
        capture_output=True, text=True, check=True).stdout
    entries = [line.strip() for line in out.splitlines() if line.strip()]
    short = [e.replace("user:", "u:").replace("group:", "g:").replace("mask:", "m:")
             .replace("other:", "o:").replace("default:", "d:") for e in entries]
    return ",".join(short)


def test_a_file_without_acl_reads_as_its_mode_bits(tmp_path: Path) -> None:
    path = tmp_path / "plain"
    path.write_text("x")
    path.chmod(0o640)
    with opened(path) as fd:
        found = acl.read_acl(fd, os.fstat(fd).st_mode)
    assert found.owner == 6 and found.spec == AclSpec(users=(), group=4, mask=4, other=0)
    assert found.text() == "u::rw-,g::r--,o::---" == getfacl(path)


def test_written_acl_is_what_getfacl_shows_and_owner_bits_are_kept(tmp_path: Path) -> None:
    path = tmp_path / "cohort.csv"
    path.write_text("x")
    path.chmod(0o544)  # owner r-x: the plan leaves it so
    spec = desired_acl(ZONE, is_dir=False, executable=True)
    with opened(path) as fd:
        acl.write_acl(fd, spec, 5)
        found = acl.read_acl(fd, os.fstat(fd).st_mode)
    assert getfacl(path) == "u::r-x,u:1001:rwx,u:1003:rwx,g::---,m::rwx,o::---"
    assert found.text() == acl.spec_text(spec, 5) == getfacl(path)
    assert found.owner == 5 and found.spec == spec and found.has_mask
    assert os.stat(path).st_mode & 0o777 == 0o570  # group bits show the mask, other nothing


def test_encode_predicts_the_kernels_bytes_exactly(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_text("x")
    spec = desired_acl(ZONE, is_dir=False, executable=False)
    with opened(path) as fd:
        acl.write_acl(fd, spec, 6)
        assert acl.read_raw(fd) == acl.encode(spec, 6)
        assert acl.read_raw(fd) != acl.encode(spec, 7)


def test_a_spec_naming_nobody_leaves_no_xattr_at_all(tmp_path: Path) -> None:
    path = tmp_path / "quarantined"
    path.write_text("x")
    path.chmod(0o664)
    nobody = desired_acl(ZoneAccess("p1", ZoneKind.QUARANTINE, "/q", frozenset()),
                         is_dir=False, executable=False)
    assert acl.encode(nobody, 6) is None
    with opened(path) as fd:
        acl.write_acl(fd, nobody, 6)
        assert acl.read_raw(fd) is None
    assert os.stat(path).st_mode & 0o777 == 0o600


def test_default_acl_round_trips_and_encode_default_matches(tmp_path: Path) -> None:
    directory = tmp_path / "d"
    directory.mkdir()
    spec = desired_default_acl(ZONE)
    with opened(directory) as fd:
        assert acl.read_default_acl(fd) is None
        acl.write_default_acl(fd, spec)
        assert acl.read_raw(fd, acl.DEFAULT_XATTR) == acl.encode_default(spec)
        found = acl.read_default_acl(fd)
    assert found is not None and not acl.default_differs(found, spec)
    assert getfacl(directory, "--default") == found.text() == (
        "u::rwx,u:1001:rwx,u:1003:rwx,g::---,m::rwx,o::---")
    assert found.text("d:").startswith("d:u::rwx,d:u:1001:rwx,")


def test_chmod_o_r_and_a_stray_user_entry_differ(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_text("x")
    spec = desired_acl(ZONE, is_dir=False, executable=False)
    with opened(path) as fd:
        acl.write_acl(fd, spec, 6)
        assert not acl.differs(acl.read_acl(fd, os.fstat(fd).st_mode), spec)
        path.chmod(0o664)
        assert acl.differs(acl.read_acl(fd, os.fstat(fd).st_mode), spec)
        acl.write_acl(fd, spec, 6)
        setfacl(path, "u:1002:r")
        assert acl.differs(acl.read_acl(fd, os.fstat(fd).st_mode), spec)
        acl.write_acl(fd, spec, 6)
        setfacl(path, "g:1002:r")  # named groups are never planned
        found = acl.read_acl(fd, os.fstat(fd).st_mode)
        assert found.groups == ((1002, 4),) and acl.differs(found, spec)


def test_owner_bits_never_count_but_the_mask_does(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_text("x")
    spec = desired_acl(ZONE, is_dir=False, executable=False)
    with opened(path) as fd:
        acl.write_acl(fd, spec, 6)
        path.chmod(0o460)  # owner loses w: not drift
        assert not acl.differs(acl.read_acl(fd, os.fstat(fd).st_mode), spec)
        path.chmod(0o470)  # chmod g+x widens the mask: drift
        assert acl.differs(acl.read_acl(fd, os.fstat(fd).st_mode), spec)


def test_inherited_rwx_cut_to_rw_by_the_mask_is_no_drift(tmp_path: Path) -> None:
    """A new file under a default ACL keeps u:UID:rwx with mask rw-: it grants exactly rw-."""
    directory = tmp_path / "d"
    directory.mkdir()
    with opened(directory) as fd:
        acl.write_default_acl(fd, desired_default_acl(ZONE))
    new = directory / "new.csv"
    os.close(os.open(new, os.O_CREAT | os.O_WRONLY, 0o666))
    spec = desired_acl(ZONE, is_dir=False, executable=False)
    with opened(new) as fd:
        found = acl.read_acl(fd, os.fstat(fd).st_mode)
        assert acl.read_raw(fd) != acl.encode(spec, 6)  # the bytes differ...
    assert found.spec.users == ((1001, 7), (1003, 7)) and found.spec.mask == 6
    assert not acl.differs(found, spec)  # ...the grant does not


def test_open_dir_nofollow_refuses_a_symlink_on_the_path(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    os.close(acl.open_dir_nofollow(str(tmp_path / "real")))
    with pytest.raises(NotADirectoryError):
        acl.open_dir_nofollow(str(tmp_path / "link"))
    with pytest.raises(NotADirectoryError):
        acl.open_dir_nofollow(str(tmp_path / "real" / ".." / "real"))


def test_malformed_xattr_is_refused() -> None:
    with pytest.raises(ValueError, match="malformed"):
        acl.parse(b"\x02\x00\x00\x00\x01", 0o100600)


def setfacl(path: Path, entry: str) -> None:
    subprocess.run(["setfacl", "-m", entry, str(path)], check=True)
