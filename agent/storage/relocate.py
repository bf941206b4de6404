"""Moving a file out of its zone (into the quarantine, or into the key zone) so that a crash at
any instant loses nothing (S4, S5, S7).

Within one file system a move is one ``renameat2(RENAME_NOREPLACE)``: atomic, never over
another file, then both folders synced. Across file systems (the key zone should be on a
file system of its own, S5) it is a copy, and the order of its steps is what makes it safe: a
journal entry first, naming everything a restart needs; the copy to a temporary name in the
target folder, synced; its inode recorded in the journal; the rename to the final name, never
over a file, and the folder synced; only then is the original unlinked. At every instant the
original, or a complete copy, or both exist. ``recover`` settles interrupted moves at start.

Every folder is reached from its zone root without following a symlink.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from agent.access.acl import open_dir_nofollow
from agent.crypto.inplace import open_folder
from agent.crypto.journal import journal_dir, read_entries, remove_entry, write_entry
from agent.durable import IN_FLIGHT, rename_noreplace
from agent.errors import InvalidRequest, Refused

JOURNAL_DIR = "storage-journal"
_COPY_CHUNK = 8 * 1024 * 1024
#: A name is tried with .1, .2 ... appended until a free one is found, this many times.
_MAX_SUFFIX = 1000


@dataclass(frozen=True)
class MoveEntry:
    """What a restart needs to finish or undo one move across file systems."""

    entry_id: str
    project: str
    source_root: str
    source_folder: str
    name: str
    dev: int
    ino: int
    size: int
    mtime_ns: int
    target_root: str
    temp_name: str
    target_name: str
    #: The copy's inode, recorded once the copy is complete and synced: only it is ever ours.
    copy_dev: int | None = None
    copy_ino: int | None = None


def journal_folder(state_dir: Path) -> Path:
    return journal_dir(state_dir, JOURNAL_DIR)


def _lstat(name: str, dir_fd: int) -> os.stat_result | None:
    try:
        return os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return None


def _candidates(stem: str) -> list[str]:
    return [stem, *(f"{stem}.{n}" for n in range(1, _MAX_SUFFIX))]


def _place(place: Callable[[str], None], stem: str) -> str:
    """Call ``place(name)`` with the first name that is free; ``place`` raises FileExistsError
    for a taken one. The target is never overwritten, whoever wins a race for a name."""
    for name in _candidates(stem):
        try:
            place(name)
        except FileExistsError:
            continue
        return name
    raise Refused(f"no free name for {stem} in the target folder (tried {_MAX_SUFFIX})",
                  hint="clear the quarantine or key zone of old files")


def _copy_all(source_fd: int, target_fd: int) -> int:
    os.lseek(source_fd, 0, os.SEEK_SET)
    copied = 0
    while True:
        try:
            count = os.copy_file_range(source_fd, target_fd, _COPY_CHUNK)
        except OSError as error:
            if error.errno not in (errno.EXDEV, errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
                raise
            count = os.write(target_fd, os.read(source_fd, _COPY_CHUNK))
        if count == 0:
            return copied
        copied += count


def move_file(journal: Path, *, project: str, source_root: str, source_folder: str,
              name: str, target_root: str, target_stem: str,
              random: Callable[[int], bytes] = os.urandom) -> str:
    """Move ``source_root/source_folder/name`` to ``target_root`` under ``target_stem`` (or
    ``stem.1``...), keeping owner, mode and content; returns the name it got."""
    src_fd = open_folder(source_root, source_folder)
    try:
        dst_fd = open_dir_nofollow(target_root, readable=True)
    except OSError as error:
        os.close(src_fd)
        raise InvalidRequest(f"{target_root} is not a folder reachable without following "
                             "links") from error
    try:
        found = _lstat(name, src_fd)
        if found is None or not stat.S_ISREG(found.st_mode):
            raise InvalidRequest(f"{name} is gone or not a regular file; nothing was moved")
        if found.st_nlink > 1:
            raise InvalidRequest(
                f"{name} has {found.st_nlink} hard links: its other names would stay behind",
                hint="remove the other links first (find -samefile)")
        if found.st_dev == os.fstat(dst_fd).st_dev:
            placed = _place(lambda n: rename_noreplace(src_fd, name, dst_fd, n), target_stem)
            os.fsync(dst_fd)
            os.fsync(src_fd)
            return placed
        entry = MoveEntry(entry_id=random(8).hex(), project=project, source_root=source_root,
                          source_folder=source_folder, name=name, dev=found.st_dev,
                          ino=found.st_ino, size=found.st_size, mtime_ns=found.st_mtime_ns,
                          target_root=target_root, temp_name="", target_name="")
        return _copy_steps(journal, src_fd, dst_fd, entry, target_stem)
    finally:
        os.close(src_fd)
        os.close(dst_fd)


def _copy_steps(journal: Path, src_fd: int, dst_fd: int, entry: MoveEntry,
                target_stem: str) -> str:
    entry = replace(entry, temp_name=f".{entry.entry_id}.moving")
    write_entry(journal, entry)
    placed = ""
    flying = (-1, -1)
    try:
        source = os.open(entry.name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=src_fd)
        try:
            temp = os.open(entry.temp_name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
                           | os.O_CLOEXEC, 0o600, dir_fd=dst_fd)
            try:
                made = os.fstat(temp)
                flying = (made.st_dev, made.st_ino)
                IN_FLIGHT.add(flying)
                copied = _copy_all(source, temp)
                like = os.fstat(source)
                if os.geteuid() == 0:
                    os.fchown(temp, like.st_uid, like.st_gid)
                os.fchmod(temp, stat.S_IMODE(like.st_mode) & 0o777)
                os.fsync(temp)
                made = os.fstat(temp)
            finally:
                os.close(temp)
            if (like.st_size, like.st_mtime_ns) != (entry.size, entry.mtime_ns) or \
                    copied != entry.size:
                raise Refused(f"{entry.name} changed while it was being moved; nothing moved",
                              hint="the next scan judges it again")
        finally:
            os.close(source)
        entry = replace(entry, copy_dev=made.st_dev, copy_ino=made.st_ino)
        write_entry(journal, entry)

        def rename(candidate: str) -> None:
            write_entry(journal, replace(entry, target_name=candidate))
            rename_noreplace(dst_fd, entry.temp_name, dst_fd, candidate)

        placed = _place(rename, target_stem)
        os.fsync(dst_fd)
        # The copy is durable under its name: now, and only now, the original goes, unless it
        # was written to meanwhile (then the copy, ours, goes instead).
        if not _unlink_if_unchanged(entry.name, src_fd, entry):
            _unlink_ours(placed, dst_fd, entry)
            os.fsync(dst_fd)
            remove_entry(journal, entry.entry_id)
            raise Refused(f"{entry.name} changed while it was being moved; nothing moved",
                          hint="the next scan judges it again")
        os.fsync(src_fd)
    except BaseException:
        if not placed:
            with contextlib.suppress(OSError):
                os.unlink(entry.temp_name, dir_fd=dst_fd)
            os.fsync(dst_fd)
            remove_entry(journal, entry.entry_id)
        raise
    finally:
        IN_FLIGHT.discard(flying)
    remove_entry(journal, entry.entry_id)
    return placed


def _same(info: os.stat_result | None, entry: MoveEntry) -> bool:
    return info is not None and stat.S_ISREG(info.st_mode) and (
        info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns) == (
        entry.dev, entry.ino, entry.size, entry.mtime_ns)


def _unlink_if_unchanged(name: str, dir_fd: int, entry: MoveEntry) -> bool:
    """Unlink the original if it is still the very file, unchanged, that was copied. It is
    renamed aside first and checked there: a new version saved under the name between a
    check and an unlink by name (an editor's atomic save) would otherwise be the one lost."""
    if not _same(_lstat(name, dir_fd), entry):
        return False
    aside = f".{entry.entry_id}.gone"
    try:
        rename_noreplace(dir_fd, name, dir_fd, aside)
    except OSError:
        return False
    if _same(_lstat(aside, dir_fd), entry):
        os.unlink(aside, dir_fd=dir_fd)
        return True
    with contextlib.suppress(OSError):  # not ours after all: it goes back under its name
        rename_noreplace(dir_fd, aside, dir_fd, name)
    return False


def _unlink_ours(name: str, dir_fd: int, entry: MoveEntry) -> None:
    info = _lstat(name, dir_fd)
    if info is not None and (info.st_dev, info.st_ino) == (entry.copy_dev, entry.copy_ino):
        os.unlink(name, dir_fd=dir_fd)


def _settle(entry: MoveEntry) -> str:
    """Finish or undo one interrupted move. The original goes only when our complete copy
    stands under its final name; our copy goes only while it is not the only one."""
    try:
        dst_fd = open_dir_nofollow(entry.target_root, readable=True)
    except OSError:
        return "target folder gone"
    try:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(entry.temp_name, dir_fd=dst_fd)
        target = _lstat(entry.target_name, dst_fd) if entry.target_name else None
        ours = target is not None and entry.copy_ino is not None and (
            target.st_dev, target.st_ino) == (entry.copy_dev, entry.copy_ino)
        os.fsync(dst_fd)
    finally:
        os.close(dst_fd)
    if not ours:
        return "rolled back"
    try:
        src_fd = open_folder(entry.source_root, entry.source_folder)
    except InvalidRequest:
        return "complete"
    try:
        original = _lstat(entry.name, src_fd)
        if original is None or (original.st_dev, original.st_ino) != (entry.dev, entry.ino):
            return "complete"
        if _unlink_if_unchanged(entry.name, src_fd, entry):
            os.fsync(src_fd)
            return "finished"
    finally:
        os.close(src_fd)
    # The original was written to after the copy: it is the newer one, so the copy goes.
    dst_fd = open_dir_nofollow(entry.target_root, readable=True)
    try:
        _unlink_ours(entry.target_name, dst_fd, entry)
        os.fsync(dst_fd)
    finally:
        os.close(dst_fd)
    return "rolled back (the original changed)"


def recover(journal: Path) -> list[dict[str, Any]]:
    """Every journalled move finished or undone, its entry removed; a damaged entry stays."""
    entries, damaged = read_entries(journal, MoveEntry)
    done: list[dict[str, Any]] = [{"entry": name, "outcome": "damaged entry kept"}
                                  for name in damaged]
    for entry in entries:
        try:
            outcome = _settle(entry)
        except OSError as error:  # a read-only or failing disk: kept for the next start
            done.append({"entry": entry.entry_id, "project": entry.project,
                         "outcome": f"kept: {error.strerror or error}"})
            continue
        remove_entry(journal, entry.entry_id)
        done.append({"entry": entry.entry_id, "project": entry.project, "outcome": outcome,
                     "path": os.path.join(entry.source_root, entry.source_folder, entry.name)})
    return done
