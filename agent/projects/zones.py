"""Creating a project's zones on disk, without following symlinks and without losing anything.

Each directory is made with ``mkdir`` relative to an already-opened parent (``dir_fd``), and every
parent is opened with ``O_NOFOLLOW``, so a symlink planted anywhere on the path makes creation
fail instead of creating a zone somewhere else. An existing directory is adopted only when it is
empty (an empty mount point, perhaps holding ``lost+found``), so no one's files are captured.
Rollback removes only the directories this call created, and only while they are empty.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from agent.errors import Failed, InvalidRequest
from agent.projects.rules import ZonePlan

ZONE_MODE = 0o700
PROJECT_DIR_MODE = 0o711
ZONES_ROOT_MODE = 0o711
_ADOPTABLE = {"lost+found"}


@contextmanager
def _open_dir_nofollow(path: str) -> Iterator[int]:
    """Open ``path`` walking from / one component at a time, refusing symlinks on the way."""
    fd = os.open("/", os.O_PATH | os.O_DIRECTORY)
    try:
        for part in [p for p in path.split("/") if p]:
            try:
                nxt = os.open(part, os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
            except FileNotFoundError:
                raise InvalidRequest(f"{path}: the parent directory does not exist") from None
            except (NotADirectoryError, OSError) as exc:
                raise InvalidRequest(
                    f"{path}: '{part}' is a symlink or not a directory; zones never follow links"
                ) from exc
            os.close(fd)
            fd = nxt
        yield fd
    finally:
        os.close(fd)


def _make_dir(path: str, mode: int, created: list[str]) -> None:
    parent, name = os.path.split(path)
    with _open_dir_nofollow(parent) as pfd:
        try:
            os.mkdir(name, mode, dir_fd=pfd)
            created.append(path)
        except FileExistsError:
            st = os.stat(name, dir_fd=pfd, follow_symlinks=False)
            if not stat.S_ISDIR(st.st_mode):
                raise InvalidRequest(
                    f"{path} exists and is not a directory (or is a symlink)"
                ) from None
            listing_fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=pfd)
            try:
                leftovers = set(os.listdir(listing_fd)) - _ADOPTABLE
            finally:
                os.close(listing_fd)
            if leftovers:
                raise InvalidRequest(
                    f"{path} already exists and is not empty",
                    hint="choose an empty directory, or move its contents away first",
                ) from None
        with _open_dir_nofollow(path) as fd:
            if os.geteuid() == 0:
                os.chown(f"/proc/self/fd/{fd}", 0, 0)
            os.chmod(f"/proc/self/fd/{fd}", mode)


def ensure_zones_root(zones_dir: Path) -> None:
    """The zones root is traversable but not listable: outsiders cannot see which projects exist."""
    created: list[str] = []
    path = os.path.normpath(str(zones_dir))
    parent = os.path.dirname(path)
    Path(parent).mkdir(parents=True, exist_ok=True)
    if os.path.lexists(path):
        if os.path.islink(path) or not os.path.isdir(path):
            raise Failed(f"zones_dir {path} is a symlink or not a directory")
        os.chmod(path, ZONES_ROOT_MODE)
        return
    _make_dir(path, ZONES_ROOT_MODE, created)


def create_zones(plan: ZonePlan) -> list[str]:
    """Create every zone; on any failure undo what was made here and re-raise."""
    created: list[str] = []
    try:
        _make_dir(plan.project_dir, PROJECT_DIR_MODE, created)
        for path in plan.zones().values():
            _make_dir(path, ZONE_MODE, created)
    except BaseException:
        remove_created(created)
        raise
    return created


def remove_created(created: list[str]) -> None:
    """Undo ``create_zones``: rmdir, newest first, never a directory that has gained content."""
    for path in reversed(created):
        try:
            os.rmdir(path)
        except OSError:
            continue


def same_filesystem(first: str, second: str) -> bool:
    return os.stat(first).st_dev == os.stat(second).st_dev
