"""POSIX ACLs of one inode, read into the plan's ``AclSpec`` and written from it.

Why an adapter this thin: every decision about *which* ACL a file must carry lives in the pure
``agent.access.plan``; this module only moves ACLs between the kernel and plain values.

Why every call takes a file descriptor: the walker opens each entry with
``O_PATH | O_NOFOLLOW`` relative to its already-opened parent, checks with ``fstat`` what it got,
and only then reads or writes the ACL through ``/proc/self/fd/N``. That magic link reaches
exactly the inode that was opened, never whatever a path names a moment later, so a symlink or
a rename planted by a member cannot redirect a write outside the zone. ``O_PATH`` opens
generate no fanotify open events and touch no atime, so enforcing does not pollute the access
log. (``fgetxattr`` on an ``O_PATH`` descriptor fails with EBADF, hence the ``/proc`` path.)

Why reading parses the raw xattr instead of asking libacl: a check runs over every file of
every zone, and one ``getxattr`` plus one ``struct`` unpack costs a fraction of building libacl
entry objects. The xattr layout is kernel ABI (``linux/posix_acl_xattr.h``: a version word, then
``(tag u16, perm u16, id u32)`` little-endian records), and the kernel keeps the records in
canonical order, so ``encode`` predicts the exact bytes a correct file carries and a check is
usually one bytes comparison. Writing goes through libacl (``posix1e``), which validates.
"""

from __future__ import annotations

import functools
import os
import struct
from dataclasses import dataclass

import posix1e

from agent.access.plan import AclSpec

ACCESS_XATTR = "system.posix_acl_access"
DEFAULT_XATTR = "system.posix_acl_default"

_VERSION = 2
_USER_OBJ, _USER, _GROUP_OBJ, _GROUP, _MASK, _OTHER = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20
_NO_ID = 0xFFFFFFFF
_HEADER = struct.Struct("<I")
_ENTRY = struct.Struct("<HHI")
_ENODATA = 61  # errno.ENODATA on Linux: the inode has no ACL of that type (a minimal ACL)

OPEN_ENTRY = os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC
_RWX = ("---", "--x", "-w-", "-wx", "r--", "r-x", "rw-", "rwx")


@dataclass(frozen=True, slots=True)
class FoundAcl:
    """An ACL as read: the plan's ``AclSpec`` plus what the plan never asks for.

    ``owner`` is the file's own ``u::`` bits, which the plan leaves alone. ``spec.users`` holds
    the named users' bits as stored (not yet cut by the mask); without a mask entry
    ``spec.mask`` is the group-class bits, which is what the kernel applies then. ``groups``
    are named-group entries: the plan never grants by group, so any of them is drift.
    """

    owner: int
    spec: AclSpec
    groups: tuple[tuple[int, int], ...] = ()
    has_mask: bool = False

    def text(self, prefix: str = "") -> str:
        return _text(self.owner, self.spec, self.groups, self.has_mask, prefix)


def proc_path(fd: int) -> str:
    """The magic link that reaches exactly the inode behind ``fd``."""
    return f"/proc/self/fd/{fd}"


def open_entry(name: str, dir_fd: int) -> int:
    """Open one directory entry without following it and without opening its contents."""
    return os.open(name, OPEN_ENTRY, dir_fd=dir_fd)


def open_dir_nofollow(path: str, *, readable: bool = False) -> int:
    """A descriptor of the directory ``path``, walked from / refusing a symlink in any
    component: ``O_PATH`` unless ``readable`` (a descriptor that can open entries and fsync).

    Raises ``NotADirectoryError`` when a component is a symlink or not a directory (including
    the last one), or is '..'; ``FileNotFoundError`` when one is missing.
    """
    kind = os.O_RDONLY if readable else os.O_PATH
    flags = kind | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open("/", kind | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for part in path.split("/"):
            if not part or part == ".":
                continue
            if part == "..":
                raise NotADirectoryError(f"{path}: '..' is not allowed")
            nxt = os.open(part, flags, dir_fd=fd)
            os.close(fd)
            fd = nxt
    except BaseException:
        os.close(fd)
        raise
    return fd


def read_raw(fd: int, name: str = ACCESS_XATTR) -> bytes | None:
    """The ACL xattr as the kernel stores it, or None when the file has none (minimal ACL)."""
    try:
        return os.getxattr(proc_path(fd), name)
    except OSError as exc:
        if exc.errno == _ENODATA:
            return None
        raise


def parse(raw: bytes | None, mode: int) -> FoundAcl:
    """The access ACL from its xattr; without one, the three classes of the mode bits."""
    if raw is None:
        group = (mode >> 3) & 7
        return FoundAcl((mode >> 6) & 7, AclSpec(users=(), group=group, mask=group,
                                                 other=mode & 7))
    return _parse_entries(raw)


def parse_default(raw: bytes | None) -> FoundAcl | None:
    return None if raw is None else _parse_entries(raw)


def read_acl(fd: int, mode: int) -> FoundAcl:
    """The access ACL of the inode behind ``fd`` (``mode`` from its ``fstat``)."""
    return parse(read_raw(fd, ACCESS_XATTR), mode)


def read_default_acl(fd: int) -> FoundAcl | None:
    """A directory's default ACL (what new entries inherit), or None when it has none."""
    return parse_default(read_raw(fd, DEFAULT_XATTR))


def encode(spec: AclSpec, owner: int) -> bytes | None:
    """The exact xattr bytes the kernel returns once ``write_acl(spec, owner)`` has been done.

    None when the spec names nobody: written without a mask, such an ACL is equivalent to the
    mode bits and the kernel stores no xattr at all.
    """
    if not spec.users:
        return None
    return _encode(spec, owner)


def encode_default(spec: AclSpec) -> bytes:
    """The exact xattr bytes of ``write_default_acl(spec)`` (default ACLs are always stored)."""
    return _encode(spec, 7)


def write_acl(fd: int, spec: AclSpec, owner: int) -> None:
    """Set the access ACL (the kernel derives the mode's group and other bits from it)."""
    _compiled(spec, owner).applyto(proc_path(fd), posix1e.ACL_TYPE_ACCESS)


def write_default_acl(fd: int, spec: AclSpec) -> None:
    """Set a directory's default ACL; its owner entry is always rwx (the creator's create mode
    and the default mask then decide what a new file gets, and the umask plays no part)."""
    _compiled(spec, 7).applyto(proc_path(fd), posix1e.ACL_TYPE_DEFAULT)


def spec_text(spec: AclSpec, owner: int, prefix: str = "") -> str:
    """Short text of what ``write_acl`` sets, e.g. ``u::rw-,u:1001:rw-,g::---,m::rw-,o::---``."""
    return _text(owner, spec, (), bool(spec.users), prefix)


def differs(found: FoundAcl, spec: AclSpec) -> bool:
    """Does the access ACL grant anything other than ``spec``? Owner bits never count.

    A named user is compared by its *effective* bits (cut by the mask): a file created under a
    default ACL keeps the inherited ``u:UID:rwx`` with mask ``rw-``, which grants exactly rw-
    and is no drift. The mask itself must equal the spec's, so a later ``chmod g+x`` is caught.
    """
    if found.groups or found.spec.group != spec.group or found.spec.other != spec.other:
        return True
    mask = found.spec.mask
    if mask != spec.mask or len(found.spec.users) != len(spec.users):
        return True
    return any(
        uid != want_uid or bits & mask != want
        for (uid, bits), (want_uid, want) in zip(found.spec.users, spec.users, strict=True)
    )


def default_differs(found: FoundAcl | None, spec: AclSpec) -> bool:
    """A default ACL is compared exactly: it is a template, so every bit in it propagates."""
    if found is None:
        return True
    return found.owner != 7 or found.groups != () or found.spec != spec


# --- internals ------------------------------------------------------------------------------


def _parse_entries(raw: bytes) -> FoundAcl:
    if len(raw) < _HEADER.size or (len(raw) - _HEADER.size) % _ENTRY.size:
        raise ValueError("malformed POSIX ACL xattr")
    owner = group = other = 0
    mask: int | None = None
    users: list[tuple[int, int]] = []
    groups: list[tuple[int, int]] = []
    for tag, perm, qualifier in _ENTRY.iter_unpack(memoryview(raw)[_HEADER.size:]):
        bits = perm & 7
        if tag == _USER_OBJ:
            owner = bits
        elif tag == _USER:
            users.append((qualifier, bits))
        elif tag == _GROUP_OBJ:
            group = bits
        elif tag == _GROUP:
            groups.append((qualifier, bits))
        elif tag == _MASK:
            mask = bits
        elif tag == _OTHER:
            other = bits
    spec = AclSpec(users=tuple(sorted(users)), group=group,
                   mask=group if mask is None else mask, other=other)
    return FoundAcl(owner, spec, tuple(sorted(groups)), mask is not None)


def _encode(spec: AclSpec, owner: int) -> bytes:
    parts = [_HEADER.pack(_VERSION), _ENTRY.pack(_USER_OBJ, owner, _NO_ID)]
    parts += [_ENTRY.pack(_USER, bits, uid) for uid, bits in sorted(spec.users)]
    parts.append(_ENTRY.pack(_GROUP_OBJ, spec.group, _NO_ID))
    if spec.users:
        parts.append(_ENTRY.pack(_MASK, spec.mask, _NO_ID))
    parts.append(_ENTRY.pack(_OTHER, spec.other, _NO_ID))
    return b"".join(parts)


@functools.lru_cache(maxsize=512)
def _compiled(spec: AclSpec, owner: int) -> posix1e.ACL:
    """Built once per (spec, owner bits) from entries, never from text (no name lookups)."""
    acl = posix1e.ACL()
    entries: list[tuple[int, int, int | None]] = [(posix1e.ACL_USER_OBJ, owner, None)]
    entries += [(posix1e.ACL_USER, bits, uid) for uid, bits in sorted(spec.users)]
    entries.append((posix1e.ACL_GROUP_OBJ, spec.group, None))
    if spec.users:  # a mask is required with named entries and pointless without
        entries.append((posix1e.ACL_MASK, spec.mask, None))
    entries.append((posix1e.ACL_OTHER, spec.other, None))
    for tag, bits, qualifier in entries:
        entry = acl.append()
        entry.tag_type = tag
        if qualifier is not None:
            entry.qualifier = qualifier
        permset = entry.permset
        for flag, perm in ((4, posix1e.ACL_READ), (2, posix1e.ACL_WRITE),
                           (1, posix1e.ACL_EXECUTE)):
            if bits & flag:
                permset.add(perm)
    if not acl.valid():
        raise ValueError("the planned ACL is not a valid POSIX ACL")
    return acl


def _text(owner: int, spec: AclSpec, groups: tuple[tuple[int, int], ...], has_mask: bool,
          prefix: str) -> str:
    parts = [f"{prefix}u::{_RWX[owner]}"]
    parts += [f"{prefix}u:{uid}:{_RWX[bits]}" for uid, bits in spec.users]
    parts.append(f"{prefix}g::{_RWX[spec.group]}")
    parts += [f"{prefix}g:{gid}:{_RWX[bits]}" for gid, bits in groups]
    if has_mask:
        parts.append(f"{prefix}m::{_RWX[spec.mask]}")
    parts.append(f"{prefix}o::{_RWX[spec.other]}")
    return ",".join(parts)
