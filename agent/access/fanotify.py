"""A thin ctypes binding to Linux fanotify: init, mark, event parsing, permission responses.

Why our own binding: the gate needs exactly two kernel features that no maintained Python
package exposes together, permission events (``FAN_OPEN_PERM``, answered with allow or deny)
and directory-handle reporting (``FAN_REPORT_DFID_NAME``, so a notification names the child
of a directory we marked). The kernel ABI is small and stable; this module keeps it in one
place, typed, and raises ``OSError`` with the real errno so the caller can tell "unsupported
here" from "directory vanished".

Only inode marks are offered on purpose: the daemon runs in a private mount namespace, where a
mount mark would land on the namespace's own copy of the mount, and a file-system mark would
gate opens far outside the zones.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import struct
from dataclasses import dataclass

# --- fanotify_init flags ------------------------------------------------------------------
FAN_CLOEXEC = 0x0000_0001
FAN_NONBLOCK = 0x0000_0002
FAN_CLASS_NOTIF = 0x0000_0000
FAN_CLASS_CONTENT = 0x0000_0004
FAN_UNLIMITED_QUEUE = 0x0000_0010
FAN_REPORT_TID = 0x0000_0100
FAN_REPORT_FID = 0x0000_0200
FAN_REPORT_DIR_FID = 0x0000_0400
FAN_REPORT_NAME = 0x0000_0800
FAN_REPORT_DFID_NAME = FAN_REPORT_DIR_FID | FAN_REPORT_NAME

# --- fanotify_mark flags ------------------------------------------------------------------
FAN_MARK_ADD = 0x0000_0001
FAN_MARK_REMOVE = 0x0000_0002
FAN_MARK_DONT_FOLLOW = 0x0000_0004
FAN_MARK_ONLYDIR = 0x0000_0008
FAN_MARK_INODE = 0x0000_0000

# --- event masks ----------------------------------------------------------------------------
FAN_ACCESS = 0x0000_0001
FAN_MODIFY = 0x0000_0002
FAN_ATTRIB = 0x0000_0004
FAN_CLOSE_WRITE = 0x0000_0008
FAN_OPEN = 0x0000_0020
FAN_MOVED_FROM = 0x0000_0040
FAN_MOVED_TO = 0x0000_0080
FAN_CREATE = 0x0000_0100
FAN_DELETE = 0x0000_0200
FAN_DELETE_SELF = 0x0000_0400
FAN_MOVE_SELF = 0x0000_0800
FAN_OPEN_EXEC = 0x0000_1000
FAN_Q_OVERFLOW = 0x0000_4000
FAN_OPEN_PERM = 0x0001_0000
FAN_ACCESS_PERM = 0x0002_0000
FAN_OPEN_EXEC_PERM = 0x0004_0000
FAN_EVENT_ON_CHILD = 0x0800_0000
FAN_ONDIR = 0x4000_0000

# --- responses, info records ----------------------------------------------------------------
FAN_ALLOW = 0x01
FAN_DENY = 0x02
FAN_NOFD = -1
FANOTIFY_METADATA_VERSION = 3
FAN_EVENT_INFO_TYPE_FID = 1
FAN_EVENT_INFO_TYPE_DFID_NAME = 2
FAN_EVENT_INFO_TYPE_DFID = 3

AT_FDCWD = -100
AT_SYMLINK_FOLLOW = 0x400
AT_EMPTY_PATH = 0x1000
MAX_HANDLE_SZ = 128

#: struct fanotify_event_metadata: event_len, vers, reserved, metadata_len, mask, fd, pid.
_METADATA = struct.Struct("=IBBHQii")
#: struct fanotify_event_info_header + fsid (two s32) + struct file_handle's fixed part.
_INFO_FID = struct.Struct("=BBHii")
_HANDLE_HEAD = struct.Struct("=Ii")
#: struct fanotify_response.
_RESPONSE = struct.Struct("=iI")
#: Big enough for hundreds of events per read; the kernel never splits one event.
READ_SIZE = 64 * 1024

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
_fanotify_init = _libc.fanotify_init
_fanotify_init.argtypes = [ctypes.c_uint, ctypes.c_uint]
_fanotify_init.restype = ctypes.c_int
_fanotify_mark = _libc.fanotify_mark
_fanotify_mark.argtypes = [ctypes.c_int, ctypes.c_uint, ctypes.c_uint64, ctypes.c_int,
                           ctypes.c_char_p]
_fanotify_mark.restype = ctypes.c_int
_name_to_handle_at = _libc.name_to_handle_at
_name_to_handle_at.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_void_p,
                               ctypes.POINTER(ctypes.c_int), ctypes.c_int]
_name_to_handle_at.restype = ctypes.c_int


class _FileHandle(ctypes.Structure):
    _fields_ = [
        ("handle_bytes", ctypes.c_uint),
        ("handle_type", ctypes.c_int),
        ("f_handle", ctypes.c_ubyte * MAX_HANDLE_SZ),
    ]


def _raise_errno(what: str, path: str | None = None) -> None:
    err = ctypes.get_errno()
    raise OSError(err, f"{what}: {os.strerror(err)}", path)


def init(flags: int, event_f_flags: int) -> int:
    """fanotify_init(2); returns the group's file descriptor."""
    fd = int(_fanotify_init(flags, event_f_flags))
    if fd < 0:
        _raise_errno("fanotify_init")
    return fd


def mark(group: int, flags: int, mask: int, path: str | None, dirfd: int = AT_FDCWD) -> None:
    """fanotify_mark(2) on one inode (``flags`` must not name a mount or file system).

    ``path=None`` marks the object ``dirfd`` itself refers to, with no name lookup to race.
    """
    raw = None if path is None else os.fsencode(path)
    if int(_fanotify_mark(group, flags, mask, dirfd, raw)) < 0:
        _raise_errno("fanotify_mark", path)


@dataclass(frozen=True, slots=True)
class HandleKey:
    """A directory as fanotify names it: file system id and file handle."""

    fsid: int
    handle_type: int
    handle: bytes


def fsid_of(path: str | int) -> int:
    """statfs(2) f_fsid as one number, the same packing ``parse_events`` uses for records."""
    return int(os.statvfs(path).f_fsid) & 0xFFFF_FFFF_FFFF_FFFF


def _pack_fsid(val0: int, val1: int) -> int:
    # glibc's statvfs packs the two s32 of __kernel_fsid_t as val[0] | val[1] << 32.
    return (val0 & 0xFFFF_FFFF) | ((val1 & 0xFFFF_FFFF) << 32)


def handle_of(path: str | int, *, follow: bool = False) -> HandleKey:
    """name_to_handle_at(2): the handle fanotify will report for this directory.

    ``path`` is a path or an open file descriptor (then the object it refers to is used).
    """
    handle = _FileHandle()
    handle.handle_bytes = MAX_HANDLE_SZ
    mount_id = ctypes.c_int(0)
    if isinstance(path, int):
        dirfd, name, flags = path, b"", AT_EMPTY_PATH
    else:
        dirfd, name, flags = AT_FDCWD, os.fsencode(path), AT_SYMLINK_FOLLOW if follow else 0
    rc = int(_name_to_handle_at(dirfd, name, ctypes.byref(handle), ctypes.byref(mount_id),
                                flags))
    if rc < 0:
        _raise_errno("name_to_handle_at", None if isinstance(path, int) else path)
    raw = bytes(handle.f_handle[: handle.handle_bytes])
    return HandleKey(fsid_of(path), int(handle.handle_type), raw)


@dataclass(frozen=True, slots=True)
class FidRecord:
    """One fid information record: which object (or directory) and, for DFID_NAME, the name."""

    info_type: int
    key: HandleKey
    name: str | None


@dataclass(frozen=True, slots=True)
class Event:
    mask: int
    fd: int
    pid: int
    records: tuple[FidRecord, ...] = ()


def _parse_records(buf: bytes, start: int, end: int) -> tuple[FidRecord, ...]:
    records: list[FidRecord] = []
    offset = start
    while offset + _INFO_FID.size <= end:
        info_type, _pad, length, fsid0, fsid1 = _INFO_FID.unpack_from(buf, offset)
        if length < _INFO_FID.size or offset + length > end:
            break
        if info_type in (FAN_EVENT_INFO_TYPE_FID, FAN_EVENT_INFO_TYPE_DFID_NAME,
                         FAN_EVENT_INFO_TYPE_DFID):
            head = offset + _INFO_FID.size
            handle_bytes, handle_type = _HANDLE_HEAD.unpack_from(buf, head)
            data = head + _HANDLE_HEAD.size
            handle = bytes(buf[data:data + handle_bytes])
            name: str | None = None
            if info_type == FAN_EVENT_INFO_TYPE_DFID_NAME:
                raw = bytes(buf[data + handle_bytes:offset + length])
                name = os.fsdecode(raw.split(b"\0", 1)[0])
            key = HandleKey(_pack_fsid(fsid0, fsid1), handle_type, handle)
            records.append(FidRecord(info_type, key, name))
        offset += length
    return tuple(records)


def parse_events(buf: bytes) -> list[Event]:
    """Split one read(2) of a fanotify group into events (metadata plus fid records)."""
    events: list[Event] = []
    offset = 0
    while offset + _METADATA.size <= len(buf):
        event_len, vers, _res, meta_len, mask, fd, pid = _METADATA.unpack_from(buf, offset)
        if vers != FANOTIFY_METADATA_VERSION:
            raise OSError(0, f"fanotify metadata version {vers}, expected "
                             f"{FANOTIFY_METADATA_VERSION}")
        if event_len < meta_len or offset + event_len > len(buf):
            break
        records = _parse_records(buf, offset + meta_len, offset + event_len)
        events.append(Event(mask, fd, pid, records))
        offset += event_len
    return events


def read_events(group: int) -> list[Event]:
    """One read(2) of the group (blocks unless the group is non-blocking)."""
    return parse_events(os.read(group, READ_SIZE))


def respond(group: int, fd: int, allow: bool) -> None:
    """Answer one permission event; the caller still owns (and must close) ``fd``."""
    os.write(group, _RESPONSE.pack(fd, FAN_ALLOW if allow else FAN_DENY))
