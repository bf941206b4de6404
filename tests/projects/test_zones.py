"""Creating a project's zones on a real disk, as root: private, never through a symlink, never
capturing anyone's files, and undone cleanly."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from agent.errors import Failed, InvalidRequest
from agent.projects.rules import ZonePlan, plan_zones
from agent.projects.zones import (
    create_zones,
    ensure_zones_root,
    remove_created,
    same_filesystem,
)

pytestmark = pytest.mark.root

OTHER_UID = 4321


def _mode(path: Path | str) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def _owner(path: Path | str) -> tuple[int, int]:
    st = os.lstat(path)
    return st.st_uid, st.st_gid


@pytest.fixture
def zones_dir(tmp_path: Path) -> Path:
    root = tmp_path / "zones"
    ensure_zones_root(root)
    return root


def _plan(zones_dir: Path, **kwargs: str) -> ZonePlan:
    return plan_zones("p1234", str(zones_dir), **kwargs)


def _snapshot(path: Path) -> dict[str, tuple[int, int, int, bytes | None]]:
    """Every entry under ``path`` with its mode, owner and content, to prove nothing changed."""
    seen: dict[str, tuple[int, int, int, bytes | None]] = {}
    for entry in [path, *sorted(path.rglob("*"))]:
        st = os.lstat(entry)
        content = entry.read_bytes() if stat.S_ISREG(st.st_mode) else None
        seen[str(entry.relative_to(path))] = (st.st_mode, st.st_uid, st.st_gid, content)
    return seen


def test_zones_are_created_mode_0700_owned_by_root_in_a_traversable_project_dir(
    zones_dir: Path,
) -> None:
    plan = _plan(zones_dir)
    old = os.umask(0o002)  # a lax umask changes nothing
    try:
        created = create_zones(plan)
    finally:
        os.umask(old)
    assert created == [plan.project_dir, plan.data, plan.key, plan.export, plan.quarantine]
    for path in created:
        assert Path(path).is_dir() and not Path(path).is_symlink()
        # Members reach their zones through the project folder, which lists nothing (0711).
        assert _mode(path) == (0o711 if path == plan.project_dir else 0o700), path
        assert _owner(path) == (0, 0), path


def test_zones_given_outside_the_zones_dir_are_created_too(
    zones_dir: Path, tmp_path: Path
) -> None:
    (tmp_path / "keys").mkdir()
    plan = _plan(zones_dir, key_dir=str(tmp_path / "keys" / "p1234"))
    assert plan.key in create_zones(plan)
    assert _mode(plan.key) == 0o700 and _owner(plan.key) == (0, 0)


def test_a_missing_parent_is_refused_and_nothing_is_left(
    zones_dir: Path, tmp_path: Path
) -> None:
    plan = _plan(zones_dir, key_dir=str(tmp_path / "no" / "such" / "key"))
    with pytest.raises(InvalidRequest, match="parent directory does not exist"):
        create_zones(plan)
    assert not (tmp_path / "no").exists()
    assert list(zones_dir.iterdir()) == []  # the project dir and data zone were rolled back


def test_a_symlink_in_place_of_a_zone_is_refused_and_its_target_untouched(
    zones_dir: Path, tmp_path: Path
) -> None:
    target = tmp_path / "victim"
    target.mkdir(mode=0o755)
    (tmp_path / "elsewhere").mkdir()
    link = tmp_path / "elsewhere" / "key"
    link.symlink_to(target)
    before = _snapshot(target)
    with pytest.raises(InvalidRequest, match="symlink"):
        create_zones(_plan(zones_dir, key_dir=str(link)))
    assert _snapshot(target) == before  # not chmod-ed, not chown-ed, nothing made inside
    assert link.is_symlink()
    assert list(zones_dir.iterdir()) == []


def test_a_dangling_symlink_in_place_of_a_zone_creates_nothing_at_its_target(
    zones_dir: Path, tmp_path: Path
) -> None:
    (tmp_path / "elsewhere").mkdir()
    link = tmp_path / "elsewhere" / "data"
    link.symlink_to(tmp_path / "would-be-created")
    with pytest.raises(InvalidRequest):
        create_zones(_plan(zones_dir, data_dir=str(link)))
    assert not (tmp_path / "would-be-created").exists()
    assert list(zones_dir.iterdir()) == []


def test_a_symlinked_project_dir_is_refused(zones_dir: Path, tmp_path: Path) -> None:
    target = tmp_path / "victim"
    target.mkdir()
    (zones_dir / "p1234").symlink_to(target)
    with pytest.raises(InvalidRequest):
        create_zones(_plan(zones_dir))
    assert list(target.iterdir()) == []


def test_a_symlinked_parent_pointing_elsewhere_is_refused(
    zones_dir: Path, tmp_path: Path
) -> None:
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "link").symlink_to(real)
    with pytest.raises(InvalidRequest, match="never follow links"):
        create_zones(_plan(zones_dir, key_dir=str(tmp_path / "link" / "key")))
    assert list(real.iterdir()) == []
    assert list(zones_dir.iterdir()) == []


def test_a_symlinked_zones_dir_is_refused(tmp_path: Path) -> None:
    real = tmp_path / "real-zones"
    real.mkdir()
    (tmp_path / "zones").symlink_to(real)
    with pytest.raises(InvalidRequest):
        create_zones(_plan(tmp_path / "zones"))
    assert list(real.iterdir()) == []


def test_a_symlinked_ancestor_far_up_is_refused(zones_dir: Path, tmp_path: Path) -> None:
    deep = tmp_path / "a" / "b" / "c"
    deep.mkdir(parents=True)
    (tmp_path / "hop").symlink_to(tmp_path / "a")
    with pytest.raises(InvalidRequest):
        create_zones(_plan(zones_dir, export_dir=str(tmp_path / "hop" / "b" / "c" / "export")))
    assert list(deep.iterdir()) == []


def test_a_file_in_place_of_a_zone_is_refused_and_kept(zones_dir: Path) -> None:
    plan = _plan(zones_dir)
    Path(plan.project_dir).write_text("not a directory")
    with pytest.raises(InvalidRequest, match="not a directory"):
        create_zones(plan)
    assert Path(plan.project_dir).read_text() == "not a directory"


def test_an_existing_empty_directory_is_adopted(zones_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "mnt").mkdir()
    data = tmp_path / "mnt" / "data"
    data.mkdir(mode=0o777)
    os.chown(data, OTHER_UID, OTHER_UID)
    plan = _plan(zones_dir, data_dir=str(data))
    created = create_zones(plan)
    assert plan.data not in created  # adopted, not created: rollback will never remove it
    assert _mode(data) == 0o700 and _owner(data) == (0, 0)


def test_an_empty_mount_point_holding_only_lost_and_found_is_adopted(
    zones_dir: Path, tmp_path: Path
) -> None:
    (tmp_path / "mnt").mkdir()
    key = tmp_path / "mnt" / "key"
    (key / "lost+found").mkdir(parents=True)
    plan = _plan(zones_dir, key_dir=str(key))
    create_zones(plan)
    assert (key / "lost+found").is_dir()
    assert _mode(key) == 0o700


def test_an_existing_non_empty_directory_is_refused_and_its_files_untouched(
    zones_dir: Path, tmp_path: Path
) -> None:
    (tmp_path / "mnt").mkdir()
    data = tmp_path / "mnt" / "data"
    data.mkdir(mode=0o755)
    (data / "results.csv").write_text("id,value\n1,2\n")
    (data / "sub").mkdir()
    (data / "sub" / "notes.txt").write_text("private")
    os.chown(data, OTHER_UID, OTHER_UID)
    before = _snapshot(data)
    with pytest.raises(InvalidRequest, match="not empty"):
        create_zones(_plan(zones_dir, data_dir=str(data)))
    assert _snapshot(data) == before
    assert list(zones_dir.iterdir()) == []  # what this call made was removed


def test_an_existing_non_empty_directory_is_refused_as_not_empty(
    zones_dir: Path, tmp_path: Path
) -> None:
    (tmp_path / "mnt").mkdir()
    data = tmp_path / "mnt" / "data"
    data.mkdir()
    (data / "results.csv").write_text("x")
    with pytest.raises(InvalidRequest, match="not empty"):
        create_zones(_plan(zones_dir, data_dir=str(data)))


def test_a_failure_later_on_rolls_back_only_what_this_call_made(
    zones_dir: Path, tmp_path: Path
) -> None:
    (tmp_path / "ro").mkdir()
    blocker = tmp_path / "ro" / "export"
    blocker.write_text("in the way")
    plan = _plan(zones_dir, export_dir=str(blocker))
    with pytest.raises(InvalidRequest):
        create_zones(plan)
    assert not Path(plan.project_dir).exists()
    assert not Path(plan.data).exists() and not Path(plan.key).exists()
    assert blocker.read_text() == "in the way"


def test_remove_created_removes_empty_dirs_and_keeps_one_that_gained_a_file(
    zones_dir: Path,
) -> None:
    plan = _plan(zones_dir)
    created = create_zones(plan)
    (Path(plan.data) / "already.csv").write_text("someone wrote here")
    remove_created(created)
    assert (Path(plan.data) / "already.csv").read_text() == "someone wrote here"
    assert Path(plan.project_dir).is_dir()  # holds data, so it stays
    for name in ("key", "export", "quarantine"):
        assert not Path(getattr(plan, name)).exists()


def test_remove_created_touches_only_the_listed_dirs(zones_dir: Path, tmp_path: Path) -> None:
    plan = _plan(zones_dir)
    created = create_zones(plan)
    bystander = zones_dir / "p9"
    bystander.mkdir()
    remove_created(created)
    assert bystander.is_dir()
    assert not Path(plan.project_dir).exists()
    remove_created(created)  # a second undo is harmless


def test_ensure_zones_root_makes_the_root_mode_0711(tmp_path: Path) -> None:
    root = tmp_path / "srv" / "vokter"
    old = os.umask(0o077)
    try:
        ensure_zones_root(root)
    finally:
        os.umask(old)
    assert root.is_dir()
    assert _mode(root) == 0o711  # traversable, not listable
    assert _owner(root) == (0, 0)


def test_ensure_zones_root_fixes_the_mode_of_an_existing_root(tmp_path: Path) -> None:
    root = tmp_path / "zones"
    root.mkdir(mode=0o777)
    root.chmod(0o777)
    (root / "p1").mkdir()
    ensure_zones_root(root)
    assert _mode(root) == 0o711
    assert (root / "p1").is_dir()


def test_ensure_zones_root_refuses_a_symlink_or_a_file(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir(mode=0o755)
    link = tmp_path / "zones"
    link.symlink_to(real)
    with pytest.raises(Failed, match="symlink"):
        ensure_zones_root(link)
    assert _mode(real) == 0o755
    afile = tmp_path / "zones-file"
    afile.write_text("x")
    with pytest.raises(Failed):
        ensure_zones_root(afile)


def test_same_filesystem(zones_dir: Path, tmp_path: Path) -> None:
    assert same_filesystem(str(zones_dir), str(tmp_path))
    assert not same_filesystem(str(tmp_path), "/proc")
