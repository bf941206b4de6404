"""Moving a file out of its zone loses nothing (S4, S5, S7): within a file system by one
rename, across file systems (a real tmpfs) by a journalled copy; a crash's leftovers are
settled at start, and the original goes only when its copy is complete and it is unchanged."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.errors import InvalidRequest
from agent.storage.relocate import journal_folder, move_file, recover

pytestmark = pytest.mark.root


@pytest.fixture
def other_fs(tmp_path: Path) -> Iterator[Path]:
    """A folder on a file system of its own: a real tmpfs, unmounted afterwards."""
    mount = tmp_path / "other"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m,mode=0700", "vokter-test",
                    str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=True)


def zone(tmp_path: Path, name: str) -> Path:
    path = tmp_path / name
    (path / "sub").mkdir(parents=True)
    return path


def write(path: Path, content: bytes, mode: int = 0o640) -> None:
    path.write_bytes(content)
    os.chmod(path, mode)


def test_s4_a_move_within_one_file_system_keeps_content_and_mode(tmp_path: Path) -> None:
    data, quarantine = zone(tmp_path, "data"), zone(tmp_path, "quarantine")
    write(data / "sub" / "f.csv", b"fnr;x\n", 0o604)
    placed = move_file(journal_folder(tmp_path / "state"), project="p1",
                       source_root=str(data), source_folder="sub", name="f.csv",
                       target_root=str(quarantine), target_stem="data-f.csv")
    assert placed == "data-f.csv"
    assert not (data / "sub" / "f.csv").exists()
    moved = quarantine / placed
    assert moved.read_bytes() == b"fnr;x\n"
    assert moved.stat().st_mode & 0o777 == 0o604


def test_s4_a_move_never_overwrites_a_file_of_the_same_name(tmp_path: Path) -> None:
    data, quarantine = zone(tmp_path, "data"), zone(tmp_path, "quarantine")
    (quarantine / "data-f.csv").write_bytes(b"older")
    (quarantine / "data-f.csv.1").write_bytes(b"old")
    write(data / "f.csv", b"new")
    placed = move_file(journal_folder(tmp_path / "state"), project="p1",
                       source_root=str(data), source_folder="", name="f.csv",
                       target_root=str(quarantine), target_stem="data-f.csv")
    assert placed == "data-f.csv.2"
    assert (quarantine / "data-f.csv").read_bytes() == b"older"
    assert (quarantine / "data-f.csv.1").read_bytes() == b"old"
    assert (quarantine / placed).read_bytes() == b"new"


def test_s5_a_move_across_file_systems_copies_syncs_and_only_then_removes(
        tmp_path: Path, other_fs: Path) -> None:
    data = zone(tmp_path, "data")
    content = os.urandom(3 * 1024 * 1024 + 17)
    write(data / "sub" / "key.csv.tink", content, 0o600)
    journal = journal_folder(tmp_path / "state")
    placed = move_file(journal, project="p1", source_root=str(data), source_folder="sub",
                       name="key.csv.tink", target_root=str(other_fs),
                       target_stem="key.csv.tink")
    assert (other_fs / placed).read_bytes() == content
    assert not (data / "sub" / "key.csv.tink").exists()
    assert list(journal.iterdir()) == []
    assert [p.name for p in other_fs.iterdir()] == ["key.csv.tink"]  # no temporary left


def test_s4_symlinks_on_the_way_are_refused_and_nothing_moves(tmp_path: Path) -> None:
    data, quarantine = zone(tmp_path, "data"), zone(tmp_path, "quarantine")
    outside = tmp_path / "outside"
    outside.mkdir()
    write(outside / "f.csv", b"x")
    (data / "link").symlink_to(outside)
    with pytest.raises(InvalidRequest):
        move_file(journal_folder(tmp_path / "state"), project="p1", source_root=str(data),
                  source_folder="link", name="f.csv", target_root=str(quarantine),
                  target_stem="f.csv")
    (data / "f.csv").symlink_to(outside / "f.csv")
    with pytest.raises(InvalidRequest, match="not a regular file"):
        move_file(journal_folder(tmp_path / "state"), project="p1", source_root=str(data),
                  source_folder="", name="f.csv", target_root=str(quarantine),
                  target_stem="f.csv")
    assert (outside / "f.csv").read_bytes() == b"x"
    assert list(quarantine.iterdir()) == [quarantine / "sub"]


def test_s4_a_hard_linked_file_is_not_moved(tmp_path: Path) -> None:
    data, quarantine = zone(tmp_path, "data"), zone(tmp_path, "quarantine")
    write(data / "f.csv", b"x")
    os.link(data / "f.csv", data / "g.csv")
    with pytest.raises(InvalidRequest, match="hard links"):
        move_file(journal_folder(tmp_path / "state"), project="p1", source_root=str(data),
                  source_folder="", name="f.csv", target_root=str(quarantine),
                  target_stem="f.csv")
    assert (data / "f.csv").exists()


def crashed(journal: Path, data: Path, target: Path, *, copied: bool, renamed: bool,
            changed: bool = False) -> Path:
    """The state a crash leaves at a step of a move across file systems."""
    original = data / "f.csv"
    write(original, b"linkage key")
    info = original.stat()
    entry = {"entry_id": "00ff", "project": "p1", "source_root": str(data),
             "source_folder": "", "name": "f.csv", "dev": info.st_dev, "ino": info.st_ino,
             "size": info.st_size, "mtime_ns": info.st_mtime_ns,
             "target_root": str(target), "temp_name": ".00ff.moving", "target_name": "",
             "copy_dev": None, "copy_ino": None}
    temp = target / ".00ff.moving"
    temp.write_bytes(b"linkage key" if copied else b"link")
    if copied:
        made = temp.stat()
        entry.update(copy_dev=made.st_dev, copy_ino=made.st_ino)
    if renamed:
        entry["target_name"] = "f.csv"
        temp.rename(target / "f.csv")
    if changed:
        with original.open("ab") as handle:
            handle.write(b" and more")
    (journal / "00ff.json").write_text(json.dumps(entry))
    return original


@pytest.mark.parametrize(("copied", "renamed", "outcome", "original_stays", "copy_stays"), [
    (False, False, "rolled back", True, False),
    (True, False, "rolled back", True, False),
    (True, True, "finished", False, True),
])
def test_s5_a_crash_at_any_step_is_settled_at_start_and_nothing_is_lost(
        tmp_path: Path, other_fs: Path, copied: bool, renamed: bool, outcome: str,
        original_stays: bool, copy_stays: bool) -> None:
    data = zone(tmp_path, "data")
    journal = journal_folder(tmp_path / "state")
    original = crashed(journal, data, other_fs, copied=copied, renamed=renamed)
    [settled] = recover(journal)
    assert settled["outcome"] == outcome
    assert original.exists() is original_stays
    assert (other_fs / "f.csv").exists() is copy_stays
    assert original.exists() or (other_fs / "f.csv").read_bytes() == b"linkage key"
    assert not (other_fs / ".00ff.moving").exists()
    assert list(journal.iterdir()) == []


def test_s5_an_original_written_to_after_the_copy_is_kept_and_the_copy_goes(
        tmp_path: Path, other_fs: Path) -> None:
    data = zone(tmp_path, "data")
    journal = journal_folder(tmp_path / "state")
    original = crashed(journal, data, other_fs, copied=True, renamed=True, changed=True)
    [settled] = recover(journal)
    assert settled["outcome"].startswith("rolled back")
    assert original.read_bytes() == b"linkage key and more"
    assert not (other_fs / "f.csv").exists()


def test_s5_a_damaged_journal_entry_is_kept_and_reported(tmp_path: Path) -> None:
    journal = journal_folder(tmp_path / "state")
    (journal / "bad.json").write_text("{not json")
    assert recover(journal) == [{"entry": "bad.json", "outcome": "damaged entry kept"}]
    assert (journal / "bad.json").exists()
