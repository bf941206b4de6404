"""Key files in the key store: written once, crash-safely, and read only when private.

Shared by the audit keys and the master key. A key file is created through a temporary file
that is fsynced and then hard-linked to its name, so a crash leaves either no key or a whole
one, and a link never replaces an existing key. Reading refuses anything but a regular file
(a symlink could point anywhere) that others cannot read.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from agent.durable import fsync_folder
from agent.errors import VokterError


def write_new(path: Path, data: bytes) -> bool:
    """Create ``path`` with ``data``, mode 0400, durably; never replaces an existing file. Two
    daemons starting at once each write their own temporary file; the first link wins and
    the other reads the winner's key. Returns whether this call made the file."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    opener = lambda p, f: os.open(p, f | os.O_TRUNC | os.O_NOFOLLOW, 0o400)  # noqa: E731
    with open(temporary, "wb", opener=opener) as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())
    made = True
    try:
        os.link(temporary, path)  # fails if path exists: a key is never overwritten
    except FileExistsError:
        made = False
    finally:
        os.unlink(temporary)
    fsync_folder(path.parent)
    return made


def read_key_file(path: Path, *, error: type[VokterError], hint: str) -> bytes:
    """The bytes of a private key file. ``error`` is the caller's failure (the audit trail's or
    the key store's); ``hint`` says what to do about a file others may read."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError as exc:
        if os.path.islink(path):
            raise error(f"{path} is a symbolic link; refusing to use it as a key",
                        hint="replace it with the key file itself") from None
        raise error(f"cannot read the key file {path}: {exc.strerror}") from None
    with os.fdopen(fd, "rb") as opened:
        info = os.fstat(opened.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise error(f"{path} is not a regular file; refusing to use it as a key")
        if info.st_mode & 0o077:
            raise error(
                f"{path} is readable by others (mode {stat.S_IMODE(info.st_mode):o})",
                hint=hint,
            )
        return opened.read()
