"""The project's date-shift secret (D4) on disk: made once, read for every shift.

Why so strict on reading: whoever reads the secret can recompute every person's offset and shift
the dates back, so a secret others can read (or write: a planted secret is a known secret) is
refused rather than used, and so is a symlink, which could point the shift at a secret that is
not the project's. The file holds 32 random bytes as 64 hex characters; a trailing newline is
allowed so that the file can be written by hand.

Who may read it: its owner, and the project's key custodians, nobody else. The secret belongs
in the project's key zone (S5, S6), whose POSIX ACL vokterd keeps at one read-write entry per
key custodian, no bits for the owning group and none for others. On a file with an ACL the
group bits of the mode are the ACL's mask, the most any of those entries grants, so a secret
the custodians can use shows group bits (``ls`` shows ``rw-rw----+``); refusing group bits
would refuse every secret kept where it belongs. The other bits are everyone else on the
machine, project members included, and any of them refuses the file. What the group bits
cannot tell is whom they reach: on a file without an ACL they are the owning group's, and
then that whole group may read the secret, so a secret outside the key zone must belong to a
group of key custodians only (or be ``0600``). A new secret is made ``0600``; in the key zone
it opens to the custodians when vokterd next brings the zone to its planned ACL.
"""

from __future__ import annotations

import errno
import os
import secrets
import stat
from pathlib import Path

from agent.durable import fsync_folder
from agent.errors import AlreadyExists, InvalidRequest

SECRET_BYTES = 32
_HEX_CHARS = 2 * SECRET_BYTES
#: Room for the hex digits and a line ending; anything longer is not a secret file.
_READ_LIMIT = _HEX_CHARS + 8
_HEX = frozenset("0123456789abcdefABCDEF")


def create_date_secret(path: Path) -> None:
    """Write a new secret at ``path``, never over an existing file (a replaced secret would
    shift the project's later files differently from its earlier ones)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                     0o600)
    except FileExistsError:
        raise AlreadyExists(f"date-shift secret {path} exists already", rule="D4",
                            hint="keep using it: a new secret would shift dates differently"
                            ) from None
    except OSError as error:
        raise InvalidRequest(f"cannot create the date-shift secret {path}: {error.strerror}",
                             rule="D4", hint="name a file in an existing folder you may write"
                             ) from None
    try:
        # The umask can only take bits away; the mode is set outright all the same.
        os.fchmod(fd, 0o600)
        view = memoryview(secrets.token_hex(SECRET_BYTES).encode("ascii"))
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        path.unlink(missing_ok=True)
        raise
    os.close(fd)
    fsync_folder(path.parent)


def _refuse(path: Path, problem: str, hint: str) -> InvalidRequest:
    return InvalidRequest(f"date-shift secret {path} {problem}", rule="D4", hint=hint)


def read_date_secret(path: Path) -> bytes:
    """The 32 secret bytes at ``path``, or a refusal that says what is wrong with the file.
    Group bits pass (the key custodians' ACL mask, see the module's docstring); other bits do
    not."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    except FileNotFoundError:
        raise _refuse(path, "does not exist",
                      "make one with 'vokter anonymise new-secret FILE'") from None
    except OSError as error:
        if error.errno == errno.ELOOP:
            raise _refuse(path, "is a symlink", "name the secret file itself") from None
        raise _refuse(path, f"cannot be read: {error.strerror}",
                      "check the path and its permissions") from None
    try:
        status = os.fstat(fd)
        if not stat.S_ISREG(status.st_mode):
            raise _refuse(path, "is not a regular file", "name the secret file itself")
        if status.st_mode & 0o006:
            raise _refuse(path, f"is open to others (mode {stat.S_IMODE(status.st_mode):04o})",
                          f"run 'chmod o-rwx {path}'")
        content = os.read(fd, _READ_LIMIT)
    finally:
        os.close(fd)
    text = content.decode("ascii", errors="replace").removesuffix("\n").removesuffix("\r")
    if len(text) != _HEX_CHARS or not set(text) <= _HEX:
        raise _refuse(path, f"does not hold {_HEX_CHARS} hex characters",
                      "restore the project's secret file unchanged")
    return bytes.fromhex(text)
