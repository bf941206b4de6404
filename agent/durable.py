"""Writing files so that a crash leaves the old content or the new, whole: never a torn file,
never a lost name. Used by the key store, the kept checkpoint, the encryption journal and the
client's output files alike."""

from __future__ import annotations

import ctypes
import errno
import os
import secrets
import threading
from pathlib import Path

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_RENAME_NOREPLACE = 1
_libc = ctypes.CDLL(None, use_errno=True)


def rename_noreplace(source_dir_fd: int, source: str, target_dir_fd: int, target: str) -> None:
    """Rename between folders of one file system, failing with ``FileExistsError`` if
    ``target`` exists: nothing of anyone's is ever overwritten, whoever wins a race."""
    if _libc.renameat2(source_dir_fd, os.fsencode(source), target_dir_fd, os.fsencode(target),
                       _RENAME_NOREPLACE) == 0:
        return
    code = ctypes.get_errno()
    if code not in (errno.EINVAL, errno.ENOSYS):
        raise OSError(code, os.strerror(code), target)
    # A file system without RENAME_NOREPLACE: a hard link is never made over a file either.
    os.link(source, target, src_dir_fd=source_dir_fd, dst_dir_fd=target_dir_fd,
            follow_symlinks=False)
    os.unlink(source, dir_fd=source_dir_fd)


def fsync_folder(folder: Path) -> None:
    """Make a rename or link in ``folder`` durable: without it a crash can lose the entry."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def replace_durably(directory: Path, name: str, data: bytes, *, mode: int = 0o600) -> None:
    """Put ``data`` at ``directory/name``, replacing what was there: a temporary file (its name
    starts with '.', so readers can skip leftovers), fsync, rename, fsync of the folder. No
    symlink is followed, neither the folder nor the names in it."""
    folder = os.open(directory, _DIR_FLAGS)
    try:
        temporary = f".{name}.{secrets.token_hex(4)}.tmp"
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
                     | os.O_CLOEXEC, mode, dir_fd=folder)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(temporary, name, src_dir_fd=folder, dst_dir_fd=folder)
        os.fsync(folder)
    finally:
        os.close(folder)


class InFlight:
    """The files this daemon is writing right now, by (device, inode): the temporaries of an
    encryption in place or a move. The storage rules leave them alone. By identity, never by
    name: anyone can name a file like a temporary to hide it."""

    def __init__(self) -> None:
        self._files: set[tuple[int, int]] = set()
        self._lock = threading.Lock()

    def add(self, identity: tuple[int, int]) -> None:
        with self._lock:
            self._files.add(identity)

    def discard(self, identity: tuple[int, int]) -> None:
        with self._lock:
            self._files.discard(identity)

    def __contains__(self, identity: object) -> bool:
        with self._lock:
            return identity in self._files


IN_FLIGHT = InFlight()
