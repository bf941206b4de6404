"""Taking the inventory of a zone before its removal: every entry, children before their folder,
each file's size and SHA-256, without following a symlink or entering a mount point.

Why descriptors and not paths: a zone belongs to people who may still hold a shell in it. A path
is looked up again at every call, so a folder swapped for a symlink between two calls would send
a path-based walk somewhere else entirely. Here every folder is opened relative to its parent's
descriptor (``openat2`` with ``RESOLVE_NO_SYMLINKS | RESOLVE_NO_XDEV``); the removal
(:mod:`agent.lifecycle.removal`) reaches folders the same way.
"""

from __future__ import annotations

import ctypes
import errno
import hashlib
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from agent.errors import Failed

FILE, DIR, SYMLINK, OTHER = "file", "dir", "symlink", "other"
CHUNK = 1 << 20
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
#: O_NONBLOCK: a file swapped for a fifo after the listing must not hang the inventory.
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
NOT_A_FOLDER = (errno.ELOOP, errno.ENOTDIR)


@dataclass(frozen=True, slots=True)
class Item:
    """One entry of a zone as the inventory found it, before anything was removed."""

    zone: str  #: the zone root, absolute
    path: str  #: relative to the zone root, "/"-separated
    kind: str  #: "file" | "dir" | "symlink" | "other" (fifo, socket, device)
    size: int  #: bytes (files: those hashed when hashing is on), 0 otherwise
    sha256: str | None  #: files only, hex; None when hashing is off


# --- opening folders --------------------------------------------------------------------------

_libc = ctypes.CDLL(None, use_errno=True)
_SYS_OPENAT2 = 437  # one number on every architecture (the unified table since Linux 5.x)
_RESOLVE_NO_XDEV, _RESOLVE_NO_MAGICLINKS, _RESOLVE_NO_SYMLINKS, _RESOLVE_BENEATH = 1, 2, 4, 8


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64),
                ("resolve", ctypes.c_uint64)]


_HOW = _OpenHow(_DIR_FLAGS, 0, _RESOLVE_NO_XDEV | _RESOLVE_NO_MAGICLINKS | _RESOLVE_NO_SYMLINKS
                | _RESOLVE_BENEATH)
_openat2 = [True]


def open_folder(name: str, dir_fd: int) -> int:
    """Open the folder ``name`` in ``dir_fd``: OSError ELOOP/ENOTDIR when it is not a folder
    (a symlink is never followed), EXDEV when it is a mount point, bind mounts included: what
    is mounted into a zone is not the zone's to remove."""
    if _openat2[0]:
        fd = int(_libc.syscall(_SYS_OPENAT2, ctypes.c_int(dir_fd), os.fsencode(name),
                               ctypes.byref(_HOW), ctypes.c_size_t(ctypes.sizeof(_HOW))))
        if fd >= 0:
            return fd
        code = ctypes.get_errno()
        if code != errno.ENOSYS:
            raise OSError(code, os.strerror(code), name)
        _openat2[0] = False  # a kernel before 5.6: the device number is the best there is
    fd = os.open(name, _DIR_FLAGS, dir_fd=dir_fd)
    if os.fstat(fd).st_dev != os.fstat(dir_fd).st_dev:
        os.close(fd)
        raise OSError(errno.EXDEV, os.strerror(errno.EXDEV), name)
    return fd


def open_zone_root(zone: str) -> int | None:
    """The zone root's descriptor; None when the zone is not there (nothing in it to remove)."""
    try:
        return os.open(zone, _DIR_FLAGS)
    except FileNotFoundError:
        return None
    except OSError as error:
        raise Failed(f"the zone {zone} is not a folder ({error.strerror})",
                     hint="nothing was removed from it") from error


# --- the inventory ----------------------------------------------------------------------------


def inventory(zone_root: Path, *, hash_files: bool = True) -> Iterator[Item]:
    """Every entry of a zone, children before their folder, the zone root itself excepted
    (it stays, empty). Files are hashed in 1 MiB reads; nothing else is ever opened, and no
    folder is entered through a symlink or a mount point (a mount point is listed, not
    entered: removing it fails, which is reported). Entries that vanish while the walk runs
    are skipped. Raises :class:`Failed` when a folder or a file to hash cannot be read: an
    inventory with holes would make a certificate that lies."""
    zone = os.path.abspath(zone_root)
    root = open_zone_root(zone)
    if root is None:
        return
    buffer = memoryview(bytearray(CHUNK)) if hash_files else None
    stack: list[tuple[int, str, list[str]]] = []
    try:
        stack.append((root, "", []))
        yield from _leaves(zone, root, "", stack[-1][2], buffer)
        while stack:
            fd, prefix, subfolders = stack[-1]
            if not subfolders:
                stack.pop()
                os.close(fd)
                if prefix:
                    yield Item(zone, prefix, DIR, 0, None)
                continue
            name = subfolders.pop()
            path = f"{prefix}/{name}" if prefix else name
            try:
                child = open_folder(name, fd)
            except FileNotFoundError:
                continue
            except OSError as error:
                if error.errno == errno.EXDEV:
                    yield Item(zone, path, DIR, 0, None)
                elif error.errno in NOT_A_FOLDER:  # became something else since the listing
                    leaf = _leaf_by_name(zone, fd, name, path, buffer)
                    if leaf is not None:
                        yield leaf
                else:
                    raise _unreadable(zone, path, error) from error
                continue
            stack.append((child, path, []))
            yield from _leaves(zone, child, path, stack[-1][2], buffer)
    finally:
        for fd, _, _ in stack:
            os.close(fd)


def _leaves(zone: str, dir_fd: int, prefix: str, subfolders: list[str],
            buffer: memoryview | None) -> Iterator[Item]:
    """The folder's entries that are not folders, in inode order (the order the file system
    frees them fastest); its subfolders' names go to ``subfolders``."""
    try:
        with os.scandir(dir_fd) as listing:
            entries = list(listing)
    except OSError as error:
        raise _unreadable(zone, prefix or ".", error) from error
    leaves = []
    for entry in entries:
        if entry.is_dir(follow_symlinks=False):
            subfolders.append(entry.name)
        else:
            leaves.append(entry)
    subfolders.reverse()  # popped from the end: walked in listing order
    leaves.sort(key=lambda entry: entry.inode())
    for entry in leaves:
        path = f"{prefix}/{entry.name}" if prefix else entry.name
        if entry.is_symlink():
            yield Item(zone, path, SYMLINK, 0, None)
        elif not entry.is_file(follow_symlinks=False):
            yield Item(zone, path, OTHER, 0, None)
        elif buffer is not None:
            item = _hashed(zone, dir_fd, entry.name, path, buffer)
            if item is not None:
                yield item
        else:
            try:
                info = entry.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue
            kind = kind_of(info.st_mode)
            yield Item(zone, path, kind, info.st_size if kind == FILE else 0, None)


def _leaf_by_name(zone: str, dir_fd: int, name: str, path: str,
                  buffer: memoryview | None) -> Item | None:
    try:
        info = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return None
    kind = kind_of(info.st_mode)
    if kind == FILE and buffer is not None:
        return _hashed(zone, dir_fd, name, path, buffer)
    return Item(zone, path, kind, info.st_size if kind == FILE else 0, None)


def _hashed(zone: str, dir_fd: int, name: str, path: str, buffer: memoryview) -> Item | None:
    """The file's SHA-256 and the number of bytes it was taken over. Opened without following
    a symlink and without blocking, then checked again on the descriptor: whatever the name
    became since the listing is what gets recorded."""
    try:
        fd = os.open(name, _READ_FLAGS, dir_fd=dir_fd)
    except FileNotFoundError:
        return None
    except OSError as error:
        if error.errno == errno.ELOOP:
            return Item(zone, path, SYMLINK, 0, None)
        if error.errno == errno.ENXIO:  # a socket
            return Item(zone, path, OTHER, 0, None)
        raise _unreadable(zone, path, error) from error
    try:
        kind = kind_of(os.fstat(fd).st_mode)
        if kind != FILE:
            return Item(zone, path, kind, 0, None)
        digest, size = hashlib.sha256(), 0
        while count := os.readv(fd, [buffer]):
            digest.update(buffer[:count])
            size += count
        return Item(zone, path, FILE, size, digest.hexdigest())
    except OSError as error:
        raise _unreadable(zone, path, error) from error
    finally:
        os.close(fd)


def kind_of(mode: int) -> str:
    if stat.S_ISREG(mode):
        return FILE
    if stat.S_ISDIR(mode):
        return DIR
    if stat.S_ISLNK(mode):
        return SYMLINK
    return OTHER


def _unreadable(zone: str, path: str, error: OSError) -> Failed:
    return Failed(f"{zone}/{path} cannot be read for the inventory: {error.strerror}",
                  rule="L2", hint="nothing was removed; the certificate must list every file")
