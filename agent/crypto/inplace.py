"""Encrypting a file in place, so that a crash at any instant loses nothing (S3).

``NAME`` becomes ``NAME.tink`` in the same folder. The order of the steps is what makes it
safe: a journal entry is written durably first, naming everything a restart needs; the
ciphertext is written to a temporary name ``.NAME.tink.partial-<id>``, synced, renamed to
``NAME.tink`` (never over an existing file) and the folder synced; only then is the plaintext
unlinked. At every instant the plaintext, or a complete ciphertext, or both exist on disk.
``recover`` finishes or undoes what a crash interrupted, from the journal, at daemon start.

Every step works through directory descriptors opened without following a symlink, from the
zone root down: a link planted in a zone never leads the daemon (root) out of it.
"""

from __future__ import annotations

import errno
import os
import stat
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from agent import durable
from agent.access.acl import ACCESS_XATTR, open_dir_nofollow, proc_path, read_raw
from agent.crypto.journal import JournalEntry, read_entries, remove_entry, write_entry
from agent.crypto.keyset import Keyset, StreamingKey
from agent.crypto.stream_io import decrypt_stream, encrypt_stream
from agent.crypto.wrapping import file_associated_data
from agent.errors import (
    AlreadyExists,
    DecryptionFailed,
    Failed,
    InvalidRequest,
    KeyDestroyed,
    Refused,
)

SUFFIX = ".tink"
PARTIAL = ".tink.partial-"
#: Room for the temporary name's prefix and suffix within NAME_MAX (255 bytes).
MAX_NAME_BYTES = 255 - len(PARTIAL) - 1 - 16

#: Files being encrypted by this process, by (st_dev, st_ino): one encryption per file.
_busy: set[tuple[int, int]] = set()
_busy_lock = threading.Lock()


@dataclass(frozen=True)
class InPlaceResult:
    target_name: str
    plaintext_bytes: int
    ciphertext_bytes: int


# --- small durable file-system steps ---------------------------------------------------------


def open_folder(zone_root: str, folder: str) -> int:
    """A readable descriptor of ``zone_root/folder``, no symlink followed on the way."""
    try:
        return open_dir_nofollow(os.path.join(zone_root, folder), readable=True)
    except (NotADirectoryError, FileNotFoundError) as error:
        raise InvalidRequest(f"{os.path.join(zone_root, folder)}: a folder on the way is "
                             "missing, a symlink or not a folder; zones never follow links",
                             hint="name the file by its real path in the zone") from error
    except OSError as error:
        if error.errno != errno.ELOOP:
            raise
        raise InvalidRequest(f"{os.path.join(zone_root, folder)}: a folder on the way is a "
                             "symlink; zones never follow links") from error


def rename_noreplace(dir_fd: int, source: str, target: str) -> None:
    """Rename within one folder, failing with ``FileExistsError`` if ``target`` exists."""
    durable.rename_noreplace(dir_fd, source, dir_fd, target)


def _lstat(name: str, dir_fd: int) -> os.stat_result | None:
    try:
        return os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return None


def _remove_regular(name: str, dir_fd: int, only: tuple[int, int] | None = None) -> bool:
    """Unlink ``name`` if it is a regular file (and, given ``only``, that very inode)."""
    info = _lstat(name, dir_fd)
    if info is None or not stat.S_ISREG(info.st_mode):
        return False
    if only is not None and (info.st_dev, info.st_ino) != only:
        return False
    os.unlink(name, dir_fd=dir_fd)
    return True


# --- encrypting in place ---------------------------------------------------------------------


@contextmanager
def _exclusive(identity: tuple[int, int]) -> Iterator[None]:
    with _busy_lock:
        if identity in _busy:
            raise Refused("this file is being encrypted already",
                          hint="wait for that encryption to finish")
        _busy.add(identity)
    try:
        yield
    finally:
        with _busy_lock:
            _busy.discard(identity)


def check_name(name: str) -> None:
    """Names that are refused before anything is touched."""
    if name.endswith(SUFFIX):
        raise InvalidRequest(f"{name} is encrypted already (it ends in {SUFFIX})",
                             hint="decrypt it with 'vokter decrypt'")
    if PARTIAL in name:
        raise InvalidRequest(f"{name} is an unfinished encryption's temporary file",
                             hint="the daemon removes it at its next start")
    if len(os.fsencode(name)) > MAX_NAME_BYTES:
        raise InvalidRequest(f"the name is too long to encrypt in place (over {MAX_NAME_BYTES} "
                             "bytes)", hint="rename the file to something shorter first")


def _make_temporary(folder_fd: int, name: str) -> int:
    """The ciphertext's temporary file: new (O_EXCL) and, while it is written, the daemon's
    alone (0600, and the mask of any inherited ACL is empty), so nobody can change it between
    the write and the plaintext's removal."""
    return os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                   0o600, dir_fd=folder_fd)


def _take_attributes(target_fd: int, source_fd: int, like: os.stat_result) -> None:
    """The plaintext's owner, mode and ACL, given to the finished ciphertext: the same people
    reach it as reached the plaintext. A failure to read or set the ACL is an error, never a
    ciphertext left more open or more closed than its plaintext."""
    if os.geteuid() == 0:
        os.fchown(target_fd, like.st_uid, like.st_gid)
    os.fchmod(target_fd, stat.S_IMODE(like.st_mode) & 0o777)
    acl = read_raw(source_fd)
    if acl is not None:
        os.setxattr(proc_path(target_fd), ACCESS_XATTR, acl)
    elif read_raw(target_fd) is not None:  # inherited from the folder's default ACL
        os.removexattr(proc_path(target_fd), ACCESS_XATTR)


def _unchanged(source_fd: int, entry: JournalEntry) -> bool:
    after = os.fstat(source_fd)
    return (after.st_size, after.st_mtime_ns) == (entry.size, entry.mtime_ns)


def _changed_meanwhile(entry: JournalEntry) -> Refused:
    return Refused(f"{entry.name} changed while it was being encrypted; nothing changed",
                   hint="try again when nobody writes to it")


def encrypt_in_place(
    *,
    journal: Path,
    project: str,
    zone: str,
    zone_root: str,
    folder: str,
    name: str,
    source_fd: int,
    key: StreamingKey,
    progress: Callable[[int], None] | None = None,
    random: Callable[[int], bytes] = os.urandom,
) -> InPlaceResult:
    """Encrypt ``zone_root/folder/name`` (opened as ``source_fd``) to ``name.tink``, in place.

    ``source_fd`` must be that very file (same device and inode); it is read, never closed."""
    check_name(name)
    target = name + SUFFIX
    folder_fd = open_folder(zone_root, folder)
    try:
        source = os.fstat(source_fd)
        found = _lstat(name, folder_fd)
        if found is None or (found.st_dev, found.st_ino) != (source.st_dev, source.st_ino):
            raise InvalidRequest(f"{name} is no longer the file that was opened",
                                 hint="it was moved or replaced meanwhile; try again")
        if not stat.S_ISREG(source.st_mode):
            raise InvalidRequest(f"{name} is not a regular file")
        if source.st_nlink > 1:
            raise InvalidRequest(
                f"{name} has {source.st_nlink} hard links: its other names would keep the "
                "plaintext", hint="remove the other links first (find -samefile)")
        if _lstat(target, folder_fd) is not None:
            raise AlreadyExists(f"{target} exists already",
                                hint="move it away, or decrypt it, before encrypting again")
        with _exclusive((source.st_dev, source.st_ino)):
            return _encrypt_steps(journal, folder_fd, source_fd, source, JournalEntry(
                entry_id=random(8).hex(), project=project, zone=zone, zone_root=zone_root,
                folder=folder, name=name, temp_name="", target_name=target,
                dev=source.st_dev, ino=source.st_ino, size=source.st_size,
                mtime_ns=source.st_mtime_ns), key, progress, random)
    finally:
        os.close(folder_fd)


def _encrypt_steps(journal: Path, folder_fd: int, source_fd: int, source: os.stat_result,
                   entry: JournalEntry, key: StreamingKey,
                   progress: Callable[[int], None] | None,
                   random: Callable[[int], bytes]) -> InPlaceResult:
    entry = replace(entry, temp_name=f".{entry.name}{PARTIAL}{entry.entry_id}")
    write_entry(journal, entry)
    placed = False
    try:
        temp_fd = _make_temporary(folder_fd, entry.temp_name)
        try:
            made = os.fstat(temp_fd)
            durable.IN_FLIGHT.add((made.st_dev, made.st_ino))
            entry = replace(entry, cipher_dev=made.st_dev, cipher_ino=made.st_ino)
            write_entry(journal, entry)
            os.lseek(source_fd, 0, os.SEEK_SET)
            result = encrypt_stream(source_fd, temp_fd, key, file_associated_data(entry.project),
                                    progress=progress, random=random)
            _take_attributes(temp_fd, source_fd, source)
            os.fsync(temp_fd)
        finally:
            os.close(temp_fd)
        if not _unchanged(source_fd, entry) or result.plaintext_bytes != entry.size:
            raise _changed_meanwhile(entry)
        try:
            rename_noreplace(folder_fd, entry.temp_name, entry.target_name)
        except FileExistsError:
            raise AlreadyExists(f"{entry.target_name} appeared while encrypting; nothing "
                                "changed", hint="move it away and try again") from None
        placed = True
        os.fsync(folder_fd)
        if not _unchanged(source_fd, entry):
            # Written to after the check: the plaintext is newer than the ciphertext, so the
            # plaintext stays and the ciphertext, ours, goes.
            _remove_regular(entry.target_name, folder_fd,
                            only=(entry.cipher_dev or 0, entry.cipher_ino or 0))
            os.fsync(folder_fd)
            remove_entry(journal, entry.entry_id)
            raise _changed_meanwhile(entry)
        # The ciphertext is durable: now, and only now, the plaintext goes.
        _remove_regular(entry.name, folder_fd, only=(entry.dev, entry.ino))
        os.fsync(folder_fd)
    except BaseException:
        if not placed:
            _remove_regular(entry.temp_name, folder_fd)
            os.fsync(folder_fd)
            remove_entry(journal, entry.entry_id)
        raise
    finally:
        durable.IN_FLIGHT.discard((entry.cipher_dev or 0, entry.cipher_ino or 0))
    remove_entry(journal, entry.entry_id)
    return InPlaceResult(entry.target_name, result.plaintext_bytes, result.ciphertext_bytes)


# --- recovery at start -----------------------------------------------------------------------


def _authentic(folder_fd: int, entry: JournalEntry, keyset: Keyset) -> bool:
    """The whole ciphertext authenticates and holds exactly the journalled plaintext length."""
    fd = os.open(entry.target_name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=folder_fd)
    try:
        result = decrypt_stream(fd, None, keyset, file_associated_data(entry.project))
    except DecryptionFailed:
        return False
    finally:
        os.close(fd)
    return result.plaintext_bytes == entry.size


def recover_entry(entry: JournalEntry, keyset_for: Callable[[str], Keyset]) -> str:
    """Finish or undo one interrupted encryption; returns what was done, for the log.

    Never removes the only copy: the plaintext goes only when our ciphertext authenticates in
    full; our ciphertext goes only while the unchanged plaintext is still there."""
    try:
        folder_fd = open_folder(entry.zone_root, entry.folder)
    except InvalidRequest:
        return "folder gone"
    try:
        _remove_regular(entry.temp_name, folder_fd)
        target = _lstat(entry.target_name, folder_fd)
        ours = target is not None and entry.cipher_ino is not None and stat.S_ISREG(
            target.st_mode) and (target.st_dev, target.st_ino) == (entry.cipher_dev,
                                                                   entry.cipher_ino)
        plain = _lstat(entry.name, folder_fd)
        plain_there = plain is not None and (plain.st_dev, plain.st_ino) == (entry.dev,
                                                                             entry.ino)
        if not ours:
            outcome = "rolled back" if plain_there else "nothing to do"
        elif not plain_there:
            outcome = "complete"
        else:
            assert plain is not None
            unchanged = (plain.st_size, plain.st_mtime_ns) == (entry.size, entry.mtime_ns)
            try:
                finish = unchanged and _authentic(folder_fd, entry, keyset_for(entry.project))
            except KeyDestroyed:
                finish = False  # a ciphertext nobody can read is no copy at all
            if finish:
                _remove_regular(entry.name, folder_fd, only=(entry.dev, entry.ino))
                outcome = "finished"
            else:
                _remove_regular(entry.target_name, folder_fd,
                                only=(entry.cipher_dev or 0, entry.cipher_ino or 0))
                outcome = "rolled back"
        os.fsync(folder_fd)
        return outcome
    finally:
        os.close(folder_fd)


def recover(journal: Path, keyset_for: Callable[[str], Keyset]) -> list[dict[str, Any]]:
    """Every journalled encryption finished or undone, its entry removed. An entry that cannot
    be settled now (the key store failed) stays for the next start."""
    entries, damaged = read_entries(journal, JournalEntry)
    done: list[dict[str, Any]] = [{"entry": name, "outcome": "damaged entry kept"}
                                  for name in damaged]
    for entry in entries:
        where = {"entry": entry.entry_id, "project": entry.project, "zone": entry.zone,
                 # The full path, as file.encrypted records it, so one search finds both.
                 "path": os.path.join(entry.zone_root, entry.folder, entry.name)}
        try:
            outcome = recover_entry(entry, keyset_for)
        except (Failed, OSError) as error:
            done.append({**where, "outcome": "kept for the next start",
                         "error": getattr(error, "message", None) or str(error)})
            continue
        remove_entry(journal, entry.entry_id)
        done.append({**where, "outcome": outcome})
    return done
