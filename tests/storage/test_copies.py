"""S1: copies of data-zone files outside the zones, found by content in real directories."""

from __future__ import annotations

import os
import shutil
import signal
import stat
from collections.abc import Iterator
from pathlib import Path
from types import FrameType

import pytest

from agent.storage.copies import (
    ZoneFileIndex,
    find_copies,
    host_kernel_devices,
    kernel_devices,
    open_if_regular,
    walk_regular_files,
)
from agent.storage.findings import Response

ROWS = b"id,age,hba1c\n1,54,48\n2,61,52\n3,47,39\n"


@pytest.fixture
def enclave(tmp_path: Path) -> dict[str, Path]:
    """A data zone with a few files, and a "home" and a "tmp" outside it."""
    zone = tmp_path / "zones" / "p1234" / "data"
    (zone / "raw").mkdir(parents=True)
    (zone / "raw" / "cohort.csv").write_bytes(ROWS)
    (zone / "notes.txt").write_bytes(b"analysis plan v2\n")
    (zone / "empty.csv").write_bytes(b"")
    other = tmp_path / "zones" / "p2000" / "data"
    other.mkdir(parents=True)
    (other / "survey.csv").write_bytes(b"q1,q2\nyes,no\n")
    home = tmp_path / "home" / "alice"
    home.mkdir(parents=True)
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    return {"zone": zone, "other": other, "home": home, "tmp": scratch,
            "zones": tmp_path / "zones"}


@pytest.fixture
def no_hang() -> Iterator[None]:
    """A walk that blocked on a FIFO would wait forever: turn that into a failure."""
    def hung(_signum: int, _frame: FrameType | None) -> None:
        raise TimeoutError("the walk blocked")

    previous = signal.signal(signal.SIGALRM, hung)
    signal.alarm(60)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def index_of(enclave: dict[str, Path]) -> ZoneFileIndex:
    return ZoneFileIndex.build([("p1234", str(enclave["zone"])),
                                ("p2000", str(enclave["other"]))])


def scan(enclave: dict[str, Path], *places: Path) -> dict[str, tuple[str | None, str]]:
    found = find_copies(index_of(enclave), [str(p) for p in places],
                        skip=[str(enclave["zone"]), str(enclave["other"])])
    return {f.path: (f.project, f.summary) for f in found}


def test_s1_a_renamed_copy_in_a_home_folder_is_found_and_names_its_original(
    enclave: dict[str, Path]
) -> None:
    copy = enclave["home"] / "Documents" / "my_table.csv"
    copy.parent.mkdir()
    shutil.copyfile(enclave["zone"] / "raw" / "cohort.csv", copy)
    shutil.copyfile(enclave["other"] / "survey.csv", enclave["tmp"] / "s.csv")

    index = index_of(enclave)
    findings = list(find_copies(index, [str(enclave["home"]), str(enclave["tmp"])],
                                skip=[str(enclave["zone"]), str(enclave["other"])]))

    by_path = {f.path: f for f in findings}
    assert set(by_path) == {str(copy), str(enclave["tmp"] / "s.csv")}
    found = by_path[str(copy)]
    original = enclave["zone"] / "raw" / "cohort.csv"
    assert (found.rule, found.kind, found.project, found.zone, found.response) == (
        "S1", "copy", "p1234", None, Response.ALERT)
    assert found.summary == f"copy of {original} found outside the zones"
    status = copy.stat()
    assert found.fingerprint == f"{status.st_size}:{status.st_mtime_ns}:{status.st_ino}"
    assert by_path[str(enclave["tmp"] / "s.csv")].project == "p2000"


def test_s1_an_unrelated_file_of_the_same_size_is_not_a_copy(enclave: dict[str, Path]) -> None:
    lookalike = bytes(reversed(ROWS))
    assert len(lookalike) == len(ROWS)
    (enclave["home"] / "other.csv").write_bytes(lookalike)
    (enclave["home"] / "empty.csv").write_bytes(b"")  # equal to the zone's empty file
    assert scan(enclave, enclave["home"]) == {}


def test_s1_a_changed_copy_is_a_new_state_and_an_edited_one_is_no_copy(
    enclave: dict[str, Path]
) -> None:
    copy = enclave["home"] / "cohort.csv"
    copy.write_bytes(ROWS)
    assert list(scan(enclave, enclave["home"])) == [str(copy)]
    copy.write_bytes(ROWS.replace(b"54", b"55"))
    assert scan(enclave, enclave["home"]) == {}


def test_s1_symlinks_to_zone_files_and_folders_are_not_followed(
    enclave: dict[str, Path]
) -> None:
    (enclave["home"] / "link.csv").symlink_to(enclave["zone"] / "raw" / "cohort.csv")
    (enclave["home"] / "zone-link").symlink_to(enclave["zone"])
    (enclave["tmp"] / "up").symlink_to(enclave["home"])
    assert scan(enclave, enclave["home"], enclave["tmp"]) == {}
    walked = [f.path for f in walk_regular_files(str(enclave["home"]))]
    assert walked == []


def test_s1_a_place_that_is_itself_a_symlink_is_not_followed(enclave: dict[str, Path]) -> None:
    (enclave["home"] / "cohort.csv").write_bytes(ROWS)
    link = enclave["tmp"] / "home-link"
    link.symlink_to(enclave["home"])
    assert scan(enclave, link) == {}
    assert list(scan(enclave, enclave["home"])) == [str(enclave["home"] / "cohort.csv")]


def test_s1_the_zones_themselves_are_skipped(enclave: dict[str, Path]) -> None:
    """A place that contains the zones (an enclave with zones under /home) reports only what
    is outside them."""
    (enclave["home"] / "cohort.csv").write_bytes(ROWS)
    found = scan(enclave, enclave["zones"].parent)
    assert list(found) == [str(enclave["home"] / "cohort.csv")]


def test_s1_fifos_sockets_and_devices_are_passed_over_without_hanging(
    enclave: dict[str, Path], no_hang: None
) -> None:
    os.mkfifo(enclave["home"] / "pipe")
    os.mknod(enclave["home"] / "null", 0o600 | stat.S_IFCHR, os.makedev(1, 3))
    (enclave["home"] / "cohort.csv").write_bytes(ROWS)
    found = scan(enclave, enclave["home"])
    assert list(found) == [str(enclave["home"] / "cohort.csv")]


def test_s1_a_copy_is_found_once_when_places_overlap(enclave: dict[str, Path]) -> None:
    (enclave["home"] / "cohort.csv").write_bytes(ROWS)
    found = list(find_copies(index_of(enclave),
                             [str(enclave["home"]), str(enclave["home"].parent)],
                             skip=[str(enclave["zone"])]))
    assert [f.path for f in found] == [str(enclave["home"] / "cohort.csv")]


def test_s1_the_index_matches_by_content_and_ignores_missing_zones(
    enclave: dict[str, Path], tmp_path: Path
) -> None:
    index = ZoneFileIndex.build([("p1234", str(enclave["zone"])),
                                 ("p9999", str(tmp_path / "no-such-zone"))])
    assert len(index) == 2  # cohort.csv and notes.txt; the empty file is not indexed
    candidate = tmp_path / "candidate"
    candidate.write_bytes(ROWS)
    fd = os.open(candidate, os.O_RDONLY)
    try:
        os.lseek(fd, 7, os.SEEK_SET)  # the descriptor's offset does not matter
        assert index.match(fd, len(ROWS)) == ("p1234", str(enclave["zone"] / "raw/cohort.csv"))
        assert index.match(fd, len(ROWS) + 1) is None
    finally:
        os.close(fd)


def test_s1_the_kernels_file_systems_are_never_walked() -> None:
    table = ("22 27 0:21 / /proc rw - proc proc rw\n"
             "24 27 0:6 / /dev rw - devtmpfs devtmpfs rw\n"
             "25 24 0:23 / /dev/shm rw - tmpfs tmpfs rw\n"
             "41 31 0:38 / /home/x/cg rw - cgroup2 cgroup2 rw\n"
             "50 27 0:45 / /tmp rw - tmpfs tmpfs rw\n"
             "27 1 254:0 / / rw - ext4 /dev/vda rw\n")
    assert kernel_devices(table) == {os.makedev(0, 21), os.makedev(0, 6), os.makedev(0, 23),
                                     os.makedev(0, 38)}
    devices = host_kernel_devices()
    assert os.stat("/proc").st_dev in devices and os.stat("/sys").st_dev in devices
    assert list(walk_regular_files("/sys/kernel", skip_devices=devices)) == []


def test_s1_root_never_opens_a_fifo_a_device_or_a_link_it_meant_to_read(tmp_path: Path) -> None:
    """O_PATH first, then a real open only for a regular file: opening some devices does
    something, and a FIFO blocks."""
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "device").symlink_to("/dev/null")
    (tmp_path / "plain").write_bytes(b"x")
    folder = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        assert open_if_regular("fifo", folder) is None
        assert open_if_regular("device", folder) is None
        assert open_if_regular("missing", folder) is None
        fd = open_if_regular("plain", folder)
        assert fd is not None
        try:
            assert os.read(fd, 10) == b"x"
        finally:
            os.close(fd)
    finally:
        os.close(folder)
    assert open_if_regular("/dev/null") is None
