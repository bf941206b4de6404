"""Removing a project's zones for good (L2) on real trees, as root: the inventory's hashes, links
and special files removed without being followed or opened, folders swapped for symlinks or
mounted over during the run, errors collected, and a run stopped by a legal hold (L5). Killing
a run and resuming it is tested in test_removal_resume.py."""

from __future__ import annotations

import ctypes
import hashlib
import os
import socket
import stat
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from agent.access.zone_inotify import IN_ISDIR, IN_OPEN, parse_events
from agent.audit.redact import MASK
from agent.errors import Failed
from agent.lifecycle.removal import MAX_ERRORS, Item, Removal, inventory
from tests.support.identity_numbers import valid_numbers

pytestmark = pytest.mark.root
_libc = ctypes.CDLL(None, use_errno=True)


def fill(root: Path, files: dict[str, bytes]) -> None:
    for relative, content in files.items():
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_bytes(content)


def snapshot(root: Path) -> dict[str, str]:
    """Every entry under ``root``, never followed: a file by its SHA-256, a link by its
    target, a folder as such. Equal snapshots: nothing was touched."""
    seen: dict[str, str] = {}
    for folder, folders, names in os.walk(root):
        for name in folders + names:
            path = Path(folder, name)
            relative = str(path.relative_to(root))
            if path.is_symlink():
                seen[relative] = f"link:{os.readlink(path)}"
            elif path.is_dir():
                seen[relative] = "dir"
            else:
                seen[relative] = hashlib.sha256(path.read_bytes()).hexdigest()
    return seen


@pytest.fixture
def zone(tmp_path: Path) -> Path:
    made = tmp_path / "zones" / "p9001" / "data"
    made.mkdir(parents=True)
    return made


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A folder next to the zones that holds someone else's files."""
    made = tmp_path / "elsewhere"
    fill(made, {"precious.csv": b"not the project's\n", "deep/more.csv": b"also not\n"})
    return made


def test_l2_the_inventory_hashes_every_file_as_hashlib_does_children_first(zone: Path) -> None:
    contents = {"empty.csv": b"", "one.csv": b"x", "big.bin": os.urandom((1 << 20) * 2 + 7),
                "a/b/c/deep.csv": b"1;2;3\n" * 1000, "a/side.txt": b"note\n"}
    fill(zone, contents)
    (zone / "a" / "empty-folder").mkdir()

    items = list(inventory(zone))

    files = {item.path: item for item in items if item.kind == "file"}
    assert files.keys() == contents.keys()
    for path, content in contents.items():
        assert files[path].sha256 == hashlib.sha256(content).hexdigest()
        assert files[path].size == len(content)
        assert files[path].zone == str(zone)
    for position, item in enumerate(items):  # no folder before anything inside it
        later = [other.path for other in items[position + 1:]]
        assert not any(path.startswith(item.path + "/") for path in later)
    assert {item.path for item in items} == set(contents) | {"a", "a/b", "a/b/c",
                                                             "a/empty-folder"}
    assert {item.sha256 for item in inventory(zone, hash_files=False)} == {None}
    assert (zone / "big.bin").read_bytes() == contents["big.bin"]


def test_l2_symlinks_are_removed_as_links_and_their_targets_survive(zone: Path, outside: Path,
                                                                    tmp_path: Path) -> None:
    fill(zone, {"inside.csv": b"ours\n", "sub/kept-by-link.csv": b"ours too\n"})
    (zone / "to-file").symlink_to(outside / "precious.csv")
    (zone / "to-folder").symlink_to(outside)
    (zone / "sub" / "up-and-out").symlink_to("../../../../elsewhere/deep")
    (zone / "dangling").symlink_to(tmp_path / "nothing-here")
    (zone / "sideways").symlink_to(zone / "sub" / "kept-by-link.csv")
    before = snapshot(outside)

    removal = Removal(tmp_path / "journal", [zone])
    kinds = {item.path: item.kind for item in removal.plan()}
    report = removal.run()

    assert {kinds[name] for name in ("to-file", "to-folder", "sub/up-and-out", "dangling",
                                     "sideways")} == {"symlink"}
    assert report.errors == () and report.removed == len(kinds) == 8
    assert snapshot(outside) == before
    assert removal.verify() == [] and list(zone.iterdir()) == []


def swap_for_symlink(folder: Path, moved_to: Path, target: Path) -> None:
    folder.rename(moved_to)
    folder.symlink_to(target, target_is_directory=True)


@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.parametrize("swapped", ["a/b/c", "a"])
def test_l2_a_folder_swapped_for_a_symlink_during_the_run_is_not_followed(
        zone: Path, outside: Path, tmp_path: Path, swapped: str, workers: int) -> None:
    fill(zone, {f"a/b/c/f{n}.csv": b"%d\n" % n for n in range(6)})
    fill(zone, {f"other/g{n}.csv": b"%d\n" % n for n in range(6)})
    moved = tmp_path / "moved"
    before = snapshot(outside)
    removal = Removal(tmp_path / "journal", [zone])
    planned = removal.plan()
    first: list[Item] = []

    def swap_after_the_first_item_in_the_folder(item: Item) -> None:
        if item.path.startswith("a/") and not first:
            first.append(item)
            swap_for_symlink(zone / swapped, moved, outside)

    report = removal.run(on_item=swap_after_the_first_item_in_the_folder, workers=workers)

    assert snapshot(outside) == before
    left_in_moved = {str(path.relative_to(moved)) for path in moved.rglob("*.csv")}
    expected_left = {f"f{n}.csv" for n in range(6)} - {Path(first[0].path).name}
    prefix = "" if swapped == "a/b/c" else "b/c/"
    assert left_in_moved == {prefix + name for name in expected_left}  # not chased
    assert report.swapped == (f"{zone}/{swapped}",)
    assert report.errors == ()
    assert report.gone >= len(expected_left) and not (zone / "a").is_symlink()
    assert report.removed + report.gone == len(planned)
    assert removal.verify() == [] and list(zone.iterdir()) == []


@contextmanager
def opens_seen(folder: Path) -> Iterator[set[str]]:
    """The names of the entries of ``folder`` opened while the block runs (inotify)."""
    fd = _libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
    assert fd >= 0 and _libc.inotify_add_watch(fd, os.fsencode(folder), IN_OPEN) >= 0
    names: set[str] = set()
    try:
        yield names
        while True:
            try:
                buffer = os.read(fd, 1 << 16)
            except BlockingIOError:
                break
            names.update(name for _, mask, name in parse_events(buffer)
                         if mask & IN_OPEN and not mask & IN_ISDIR)
    finally:
        os.close(fd)


def test_l2_fifos_sockets_and_devices_are_removed_without_being_opened(zone: Path,
                                                                        tmp_path: Path) -> None:
    fill(zone, {"table.csv": b"1;2\n"})
    os.mkfifo(zone / "pipe")
    os.mknod(zone / "null-device", 0o600 | stat.S_IFCHR, os.makedev(1, 3))
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(zone / "sock"))
    listener.close()

    removal = Removal(tmp_path / "journal", [zone])
    with opens_seen(zone) as opened:
        kinds = {item.path: item.kind for item in removal.plan()}
        report = removal.run()

    assert kinds == {"table.csv": "file", "pipe": "other", "null-device": "other",
                     "sock": "other"}
    assert opened == {"table.csv"}  # the watch works, and saw nothing else opened
    assert report.removed == 4 and report.errors == ()
    assert removal.verify() == []


@contextmanager
def immutable(path: Path) -> Iterator[None]:
    made = subprocess.run(["chattr", "+i", str(path)], capture_output=True, text=True)
    if made.returncode != 0:
        pytest.skip(f"chattr +i does not work on this file system: {made.stderr.strip()}")
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", str(path)], check=True)


def test_l2_errors_are_collected_and_the_run_goes_on_then_a_later_run_retries(
        zone: Path, tmp_path: Path) -> None:
    number = valid_numbers(1, seed=9)[0]
    fill(zone, {f"sub/{number}.csv": b"locked\n", "sub/free.csv": b"free\n",
                "later/x.csv": b"x\n", "z.csv": b"z\n"})
    removal = Removal(tmp_path / "journal", [zone], sync_every=1)
    removal.plan()

    with immutable(zone / "sub" / f"{number}.csv"):
        report = removal.run()
        left = removal.verify()

    assert len(report.errors) == 2
    assert report.errors[0].startswith(f"{zone}/sub/{MASK}.csv: ")
    assert "Operation not permitted" in report.errors[0]
    assert report.errors[1] == f"{zone}/sub: Directory not empty"
    assert all(number not in error for error in report.errors)
    assert report.removed == 4 and not report.stopped
    assert left == [f"{zone}/sub/{number}.csv", f"{zone}/sub"]

    retried = Removal(tmp_path / "journal", [zone]).run()
    assert (retried.removed, retried.done_before, retried.errors) == (2, 4, ())
    assert removal.verify() == []


@contextmanager
def bind_mounted(source: Path, target: Path) -> Iterator[None]:
    target.mkdir(exist_ok=True)
    subprocess.run(["mount", "--bind", str(source), str(target)], check=True)
    try:
        yield
    finally:
        subprocess.run(["umount", str(target)], check=True)


def test_l2_a_mount_point_inside_a_zone_is_listed_not_entered(zone: Path, outside: Path,
                                                              tmp_path: Path) -> None:
    fill(zone, {"mine.csv": b"1\n"})
    before = snapshot(outside)
    removal = Removal(tmp_path / "journal", [zone])
    with bind_mounted(outside, zone / "mounted"):
        planned = [(item.path, item.kind) for item in removal.plan()]
        report = removal.run()
        left = removal.verify()
        assert snapshot(outside) == before

    assert planned == [("mine.csv", "file"), ("mounted", "dir")]
    assert report.errors == (f"{zone}/mounted: Device or resource busy",)
    assert left == [f"{zone}/mounted"]
    assert Removal(tmp_path / "journal", [zone]).run().removed == 1  # once unmounted


def test_l2_a_folder_mounted_over_during_the_run_is_not_entered(zone: Path, outside: Path,
                                                                tmp_path: Path) -> None:
    fill(zone, {f"sub/f{n}.csv": b"%d\n" % n for n in range(4)})
    before = snapshot(outside)
    removal = Removal(tmp_path / "journal", [zone])
    removal.plan()
    mounted: list[bool] = []

    def mount_after_the_first_item(item: Item) -> None:
        if not mounted:
            subprocess.run(["mount", "--bind", str(outside), str(zone / "sub")], check=True)
            mounted.append(True)

    try:
        report = removal.run(on_item=mount_after_the_first_item, workers=1)
        assert snapshot(outside) == before
    finally:
        if mounted:
            subprocess.run(["umount", str(zone / "sub")], check=True)
    assert report.removed == 1
    assert report.errors == (f"{zone}/sub: a mount point now; not entered",
                             f"{zone}/sub: Device or resource busy")
    assert Removal(tmp_path / "journal", [zone]).run().removed == 4


@contextmanager
def read_only(folder: Path) -> Iterator[None]:
    subprocess.run(["mount", "--bind", str(folder), str(folder)], check=True)
    try:
        subprocess.run(["mount", "-o", "remount,bind,ro", str(folder)], check=True)
        yield
    finally:
        subprocess.run(["umount", str(folder)], check=True)


def test_l2_a_read_only_zone_fails_every_item_and_the_report_stays_readable(
        zone: Path, tmp_path: Path) -> None:
    fill(zone, {f"many/f{n}.csv": b"" for n in range(MAX_ERRORS + 5)})
    removal = Removal(tmp_path / "journal", [zone])
    with read_only(zone):
        report = removal.run()

    assert report.removed == 0 and not report.stopped
    assert len(report.errors) == MAX_ERRORS + 1
    assert report.errors[0].endswith(": Read-only file system")
    assert report.errors[-1] == "... and 6 more errors like these"  # the folder's too
    assert removal.run().removed == MAX_ERRORS + 6  # nothing was marked done


def test_l5_a_hold_placed_mid_run_stops_it_before_the_next_item(zone: Path,
                                                                 tmp_path: Path) -> None:
    fill(zone, {f"d{n % 3}/f{n}.csv": b"%d\n" % n for n in range(12)})
    removal = Removal(tmp_path / "journal", [zone], sync_every=1)
    planned = removal.plan()
    removed: list[Item] = []
    asked: list[int] = []

    def hold_placed_after_three() -> bool:
        asked.append(len(removed))
        return len(removed) >= 3

    report = removal.run(should_stop=hold_placed_after_three, on_item=removed.append,
                         workers=1)

    assert report.stopped and report.removed == 3 and asked == [0, 1, 2, 3]
    still_there = [item for item in planned if (zone / item.path).exists()]
    assert still_there == planned[3:]
    resumed = Removal(tmp_path / "journal", [zone]).run()
    assert (resumed.done_before, resumed.removed, resumed.stopped) == (3, len(planned) - 3,
                                                                      False)


def test_l5_a_hold_stops_every_worker(zone: Path, tmp_path: Path) -> None:
    fill(zone, {f"d{n % 8}/f{n}.csv": b"%d\n" % n for n in range(80)})
    removal = Removal(tmp_path / "journal", [zone])
    planned = removal.plan()
    count = [0]

    def count_item(item: Item) -> None:
        count[0] += 1

    report = removal.run(should_stop=lambda: count[0] >= 10, on_item=count_item, workers=2)

    assert report.stopped and 10 <= report.removed <= 11  # the other worker's item in flight
    assert sum((zone / item.path).exists() for item in planned) == len(planned) - \
        report.removed


def test_l2_a_zone_that_is_a_symlink_is_refused_and_a_missing_one_is_empty(
        outside: Path, tmp_path: Path) -> None:
    link = tmp_path / "zone-link"
    link.symlink_to(outside, target_is_directory=True)
    with pytest.raises(Failed, match="is not a folder"):
        list(inventory(link))
    assert list(inventory(tmp_path / "no-such-zone")) == []
    before = snapshot(outside)
    with pytest.raises(Failed, match="is not a folder"):
        Removal(tmp_path / "journal", [link]).run()
    assert snapshot(outside) == before
    assert list((tmp_path / "journal").iterdir()) == []  # no plan: nothing to resume
