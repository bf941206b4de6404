"""What a handler may assume of a descriptor a client passed (SCM_RIGHTS): an open regular
file, opened the right way. The daemon writes and reads only through such descriptors, never a
path a client names, so the kernel has already checked the client's own rights to them."""

from __future__ import annotations

import fcntl
import os
import stat

from agent.errors import InvalidRequest


def checked_file(fd: int, what: str, *, writing: bool, reading: bool | None = None
                 ) -> os.stat_result:
    """A passed descriptor: a regular file, opened for reading, writing, or (both given) both:
    what the daemon will do through it, the client must have been allowed to do itself."""
    try:
        info = os.fstat(fd)
        access = fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_ACCMODE
    except OSError:
        raise InvalidRequest(f"{what} is not an open file") from None
    if not stat.S_ISREG(info.st_mode):
        raise InvalidRequest(f"{what} is not a regular file")
    reading = not writing if reading is None else reading
    wanted = {os.O_RDWR}
    if not writing:
        wanted.add(os.O_RDONLY)
    if not reading:
        wanted.add(os.O_WRONLY)
    if access not in wanted:
        how = "reading and writing" if reading and writing else "writing" if writing \
            else "reading"
        raise InvalidRequest(f"{what} was not opened for {how}")
    return info
