"""Files the CLI writes for the user, with the user's own rights: a progress bar while the
daemon works, and results placed under their final name only once they are complete.

The daemon never opens a path a client names, so commands that produce a file (an audit
export, a decrypted file) open it here, under a temporary name beside the target, pass the
descriptor, and rename it into place only when the daemon reports success.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from agent.api import UsageError, VokterError


def open_own(path: Path, *, writing: bool = False, denied_hint: str | None = None) -> int:
    """The user's own open of a file the daemon is to read (or, ``writing``, replace): a
    regular file, opened with the user's rights, or a one-line error. Passed as a
    descriptor, so the kernel, not the daemon, checks the user may."""
    access = os.O_RDWR if writing else os.O_RDONLY
    try:
        fd = os.open(path, access | os.O_NOCTTY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise UsageError(f"{path}: no such file") from None
    except PermissionError:
        raise VokterError(f"{path}: permission denied", hint=denied_hint) from None
    except OSError as error:
        raise VokterError(f"{path}: {error.strerror or error}") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise UsageError(f"{path} is not a regular file")
    os.set_blocking(fd, True)
    return fd


#: ``update(done, total)``, as progress frames report it.
ProgressUpdate = Callable[[int, int], None]


def _no_progress(_done: int, _total: int) -> None:
    """In a pipe, progress is not shown."""


@contextlib.contextmanager
def progress_bar(label: str, *, in_bytes: bool = False) -> Iterator[ProgressUpdate]:
    """A progress bar on stderr when it is a terminal; nothing in a pipe."""
    if not sys.stderr.isatty():
        yield _no_progress
        return
    counted: tuple[ProgressColumn, ...] = (
        (DownloadColumn(), TransferSpeedColumn()) if in_bytes else (MofNCompleteColumn(),))
    columns = (TextColumn(label), BarColumn(), *counted, TimeRemainingColumn())
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task(label, total=None)

        def update(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield update


def refuse_existing(paths: tuple[Path, ...], force: bool) -> None:
    for path in paths:
        if not force and (path.exists() or path.is_symlink()):
            raise UsageError(f"{path} exists; pass --force to replace it")
        if path.is_dir():
            raise UsageError(f"{path} is a directory")


def place(temporary: Path, final: Path, force: bool, *, during: str = "the export") -> None:
    """Move a finished file into place; without --force never over a file made meanwhile."""
    if force:
        os.replace(temporary, final)
        return
    try:
        os.link(temporary, final)
    except FileExistsError:
        raise UsageError(f"{final} appeared during {during}; pass --force to replace it")\
            from None
    except OSError as error:
        if error.errno not in (errno.EPERM, errno.ENOTSUP, errno.EXDEV, errno.EMLINK):
            raise
        os.replace(temporary, final)  # a file system without hard links
        return
    os.unlink(temporary)


