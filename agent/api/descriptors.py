"""What a handler may assume of a descriptor a client passed (SCM_RIGHTS): an open regular
file, opened the right way. The daemon writes and reads only through such descriptors, never a
path a client names, so the kernel has already checked the client's own rights to them."""

from __future__ import annotations

import fcntl
import os
import stat

from agent.errors import InvalidRequest


def checked_file(fd: int, what: str, *, writing: bool) -> os.stat_result:
    """A passed descriptor: a regular file, opened for reading (or writing)."""
    try:
        info = os.fstat(fd)
        access = fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_ACCMODE
    except OSError:
        raise InvalidRequest(f"{what} is not an open file") from None
    if not stat.S_ISREG(info.st_mode):
        raise InvalidRequest(f"{what} is not a regular file")
    wanted = (os.O_WRONLY, os.O_RDWR) if writing else (os.O_RDONLY, os.O_RDWR)
    if access not in wanted:
        raise InvalidRequest(f"{what} was not opened for {'writing' if writing else 'reading'}")
    return info
