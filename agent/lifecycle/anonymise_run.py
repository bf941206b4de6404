"""Disposal by anonymisation, the data zone's part (L6, L7), and the archive's note (L9).

The disposal run (:mod:`agent.lifecycle.disposal`) crypto-shreds the project's keyset and
removes its key zone first: the linkage key goes, which is how anonymisation is usually done
(L6). What stays is the data zone, and it may only stay if no one can be singled out from it
(L7). So every file of the data zone gets one outcome here:

- **kept**: a table already k-anonymous (by the rules of :mod:`agent.lifecycle.anonymise_settings`)
  holding nothing to remove; its bytes are not touched.
- **anonymised**: a table that fails, replaced by its anonymised version from the engine of
  ``vokter anonymise apply`` (direct identifiers and identity-number columns removed, the
  quasi-identifiers generalised, small groups suppressed). It is written beside the original
  as a temporary, fsync'd, given the original's owner, mode and ACL, and renamed over it, then
  the folder is fsync'd: at every instant the original or the anonymised version is there.
- **deleted**: anything that cannot be shown anonymous: a table without a usable config, one
  that cannot be read or for which k is not reachable, a file that is not a table, a symlink,
  fifo, socket or device (removed as a name, never followed or opened). The config and its
  hierarchy files go last: they say which columns identify.
- **failed** (not journalled, tried again by the next run): an error that may pass, such as a
  disk full while writing or a file that cannot be unlinked. The config stays while any table
  has failed, so that the next run judges it by the same config.

Why it is safe to walk: folders are opened relative to their parent's descriptor without
following a symlink or crossing a mount (:func:`agent.lifecycle.removal_inventory.open_folder`),
afresh from the zone root for each file; reading, replacing and unlinking are done relative to
the folder so opened (``unlinkat``, ``renameat``), as :class:`agent.lifecycle.removal.Removal`
does. Nothing outside the data zone is opened, written or removed. Folders stay, empty or not.

Why it resumes: each file's outcome is a JSON line in ``journal_dir/anonymise.jsonl``, fsync'd
before the next file is started. Before an anonymised version is renamed into place, its outcome
is journalled as pending with the new SHA-256; a run killed after the rename finds that digest
and records the outcome, one killed before it finds the original and does the work again. A
killed run started again skips what is done and redoes the rest.
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, date
from pathlib import Path
from typing import Any

from agent.anonymise.engine import anonymise_frame
from agent.anonymise.tables import read_table, write_table
from agent.anonymise.tables_meta import value_label_texts
from agent.audit.redact import redact_identity_numbers
from agent.errors import AnonymisationImpossible, Refused, VokterError
from agent.lifecycle.anonymise_journal import Journal
from agent.lifecycle.anonymise_settings import (
    CONFIG_NAME,
    ZoneConfig,
    anonymous_as_it_is,
    read_zone_config,
    table_settings,
)
from agent.lifecycle.model import ApprovalFacts, ApprovalKind
from agent.lifecycle.removal_inventory import (
    DIR,
    NOT_A_FOLDER,
    inventory,
    open_folder,
    open_zone_root,
)
from agent.policy.model import Policy
from agent.store.tables import Approval

__all__ = [
    "ANONYMISED",
    "DELETED",
    "FAILED",
    "KEPT",
    "TABLE_SUFFIXES",
    "TableOutcome",
    "anonymise_data_zone",
    "archive_note",
]

KEPT, ANONYMISED, DELETED, FAILED = "kept", "anonymised", "deleted", "failed"
#: The extensions :func:`agent.anonymise.tables.read_table` reads; anything else is no table.
TABLE_SUFFIXES = frozenset({".csv", ".tsv", ".txt", ".parquet", ".pq", ".dta", ".sav", ".zsav"})
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_ACL = "system.posix_acl_access"
_CHUNK = 1 << 20


@dataclass(frozen=True)
class TableOutcome:
    """What became of one file of the data zone (what the certificate lists)."""

    path: str  #: relative to the data zone, "/"-separated
    outcome: str  #: kept | anonymised | deleted | failed
    reason: str  #: in words, never an identity number
    k: int | None  #: the k reached, when kept (with rows) or anonymised
    sha256_before: str | None  #: regular files
    sha256_after: str | None  #: kept and anonymised tables
    size_before: int

    def to_json(self) -> dict[str, Any]:
        return {"path": self.path, "outcome": self.outcome, "reason": self.reason, "k": self.k,
                "sha256_before": self.sha256_before, "sha256_after": self.sha256_after,
                "size_before": self.size_before}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TableOutcome:
        k, size = data["k"], data["size_before"]
        before, after = data["sha256_before"], data["sha256_after"]
        return cls(path=str(data["path"]), outcome=str(data["outcome"]),
                   reason=str(data["reason"]), k=k if isinstance(k, int) else None,
                   sha256_before=before if isinstance(before, str) else None,
                   sha256_after=after if isinstance(after, str) else None,
                   size_before=size if isinstance(size, int) else 0)


def anonymise_data_zone(data_zone: Path, journal_dir: Path, *, policy: Policy, today: date,
                        should_stop: Callable[[], bool]) -> tuple[list[TableOutcome], bool]:
    """Give every file of the data zone its outcome; returns every outcome on record (those of
    earlier, interrupted runs first) and whether ``should_stop`` stopped the run. It is asked
    before each file (a legal hold placed mid-run, L5). Raises :class:`Failed` when the zone
    cannot be listed or the journal is damaged or in use."""
    zone = os.path.abspath(data_zone)
    with Journal.open(Path(journal_dir), zone) as journal:
        outcomes = [TableOutcome.from_json(data) for data in journal.done.values()]
        root = open_zone_root(zone)
        if root is None:
            return outcomes, False
        try:
            config = read_zone_config(root)
            last = set(config.files)
            items = [item for item in inventory(Path(zone), hash_files=False)
                     if item.kind != DIR and item.path not in journal.done]
            run = _Run(root, config, journal, policy, today)
            for item in [item for item in items if item.path not in last]:
                if should_stop():
                    return outcomes, True
                outcomes.extend(run.one(item.path))
            if any(outcome.outcome == FAILED for outcome in outcomes):
                return outcomes, False  # the config stays for the next run to go by
            present = {item.path for item in items}
            for path in config.files:
                if path in present:
                    if should_stop():
                        return outcomes, True
                    outcomes.extend(run.one(path, describes_identifiers=True))
        finally:
            os.close(root)
    return outcomes, False


class _Run:
    def __init__(self, root: int, config: ZoneConfig, journal: Journal, policy: Policy,
                 today: date) -> None:
        self.root, self.config, self.journal = root, config, journal
        self.policy, self.today = policy, today

    def one(self, path: str, *, describes_identifiers: bool = False) -> list[TableOutcome]:
        """The file's outcome, journalled unless it failed; [] when it is no longer there."""
        *folders, name = path.split("/")
        try:
            with _folder(self.root, folders) as folder:
                outcome = self._in_folder(path, folder, name, describes_identifiers)
        except FileNotFoundError:
            return []
        except OSError as error:
            outcome = _failed(path, f"a folder on its way cannot be entered ({error.strerror})")
        if outcome is not None and outcome.outcome != FAILED:
            self.journal.record(outcome.to_json())
        return [] if outcome is None else [outcome]

    def _in_folder(self, path: str, folder: int, name: str,
                   describes_identifiers: bool) -> TableOutcome | None:
        try:
            fd = os.open(name, _READ_FLAGS, dir_fd=folder)
        except FileNotFoundError:
            return None
        except OSError as error:
            if error.errno not in (errno.ELOOP, errno.ENXIO):  # a symlink; a socket
                return _failed(path, f"cannot be opened ({error.strerror})")
            return _unlink(folder, name, path, None, 0, "a symlink or socket: removed as a "
                           "name, never followed")
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                return _unlink(folder, name, path, None, 0, "not a regular file (a fifo or "
                               "device): removed as a name, never opened")
            before = _sha256(fd)
            if describes_identifiers:
                why = ("the anonymisation config" if path == CONFIG_NAME
                       else "a hierarchy of the anonymisation config")
                return _unlink(folder, name, path, before, info.st_size,
                               f"{why}: it describes the identifiers")
            pending = self.journal.pending.get(path)
            if pending is not None and pending.get("sha256_after") == before:
                # Renamed into place by a run killed before it could record the outcome.
                return TableOutcome.from_json(pending)
            return self._table(path, folder, name, fd, info, before)
        finally:
            os.close(fd)

    def _table(self, path: str, folder: int, name: str, fd: int, info: os.stat_result,
               before: str) -> TableOutcome:
        def delete(why: str) -> TableOutcome:
            return _unlink(folder, name, path, before, info.st_size, why)

        if Path(name).suffix.lower() not in TABLE_SUFFIXES:
            return delete("not a table")
        if self.config.config is None:
            return delete(f"cannot be shown anonymous: {self.config.refusal}")
        where = f"/proc/self/fd/{folder}/{name}"
        try:
            table = read_table(where)
        except VokterError as error:
            return delete("not readable as a table: " + _words(error, where, path))
        if table.meta.identity != (info.st_dev, info.st_ino):
            return _failed(path, "replaced while it was read")
        settings = table_settings(self.config, table.frame.columns, self.policy)
        if isinstance(settings, str):
            return delete(f"cannot be shown anonymous: {settings}")
        labels = value_label_texts(table.meta)
        share = self.policy.storage.identifier_column_share
        try:
            k = anonymous_as_it_is(table.frame, settings, today=self.today, share=share,
                                   value_labels=labels)
            if k is not None:
                unit = "" if settings.person is None else " in persons"
                return TableOutcome(path, KEPT, f"{settings.k}-anonymous{unit} as it was "
                                    f"({k} at the least)" if table.frame.height else "no rows",
                                    k or None, before, before, info.st_size)
            result = anonymise_frame(table.frame, settings, date_secret=None, today=self.today,
                                     identity_share=share, policy_k=self.policy.anonymisation.k,
                                     value_labels=labels)
        except AnonymisationImpossible as error:
            return delete("k not reachable: " + _words(error, where, path))
        except VokterError as error:  # an L6 refusal, or the engine's own check failing
            return delete("cannot be anonymised: " + _words(error, where, path))
        temporary = f".vokter-anonymised-{hashlib.sha256(os.fsencode(name)).hexdigest()[:16]}"
        try:
            write_table(table, result.frame, f"/proc/self/fd/{folder}/{temporary}",
                        overwrite=True, generalised=result.report.generalised)
        except Refused as error:
            return delete("cannot be written back: " + _words(error, where, path))
        except VokterError as error:
            return _failed(path, "the anonymised version could not be written: "
                           + _words(error, f"/proc/self/fd/{folder}/{temporary}", path))
        report = result.report
        removed = f", {len(report.removed_columns)} columns removed" \
            if report.removed_columns else ""
        try:
            after = _like_the_original(folder, temporary, fd, info)
            outcome = TableOutcome(path, ANONYMISED, f"anonymised: k {report.k_reached}, "
                                   f"{report.suppressed_rows} rows suppressed{removed}",
                                   report.k_reached, before, after, info.st_size)
            self.journal.record(outcome.to_json(), pending=True)
            os.rename(temporary, name, src_dir_fd=folder, dst_dir_fd=folder)
            os.fsync(folder)
        except OSError as error:
            with suppress(OSError):
                os.unlink(temporary, dir_fd=folder)
            return _failed(path, f"the anonymised version could not be put in place "
                           f"({error.strerror})")
        return outcome


@contextmanager
def _folder(root: int, names: Sequence[str]) -> Iterator[int]:
    """The folder ``names`` below the zone root, every step through a descriptor, none through
    a symlink or a mount point; FileNotFoundError when the file's folder is gone, OSError
    ELOOP/ENOTDIR/EXDEV when a folder on the way is no longer one (it is not followed)."""
    opened: list[int] = []
    try:
        folder = root
        for name in names:
            try:
                folder = open_folder(name, folder)
            except OSError as error:
                if error.errno in NOT_A_FOLDER or error.errno == errno.EXDEV:
                    raise OSError(error.errno, "replaced by something else than a folder, "
                                  "not followed") from None
                raise
            opened.append(folder)
        yield folder
    finally:
        for fd in reversed(opened):
            os.close(fd)


def _unlink(folder: int, name: str, path: str, before: str | None, size: int,
            why: str) -> TableOutcome:
    """Remove the name (unlinkat relative to its folder: a symlink goes, its target stays)."""
    try:
        os.unlink(name, dir_fd=folder)
    except FileNotFoundError:
        pass
    except OSError as error:
        return _failed(path, f"{why}; but it could not be removed ({error.strerror})")
    return TableOutcome(path, DELETED, redact_identity_numbers(why), None, before, None, size)


def _failed(path: str, why: str) -> TableOutcome:
    return TableOutcome(path, FAILED, redact_identity_numbers(why), None, None, None, 0)


def _words(error: VokterError, where: str, path: str) -> str:
    """The error's message and rule, the descriptor path the reader was given shown as the
    file's; not its hint, which tells a person at a command line what to type."""
    text = error.message.replace(where, path)
    if error.rule and f"({error.rule})" not in text:
        text = f"{text} ({error.rule})"
    return " ".join(text.split())


def _sha256(fd: int) -> str:
    digest = hashlib.sha256()
    offset = 0
    while block := os.pread(fd, _CHUNK, offset):
        digest.update(block)
        offset += len(block)
    return digest.hexdigest()


def _like_the_original(folder: int, temporary: str, original: int,
                       info: os.stat_result) -> str:
    """Give the anonymised version the original's owner, mode and ACL (whoever could read the
    original reads its replacement, no one else), make that durable, and return its SHA-256."""
    fd = os.open(temporary, _READ_FLAGS, dir_fd=folder)
    try:
        os.fchown(fd, info.st_uid, info.st_gid)
        os.fchmod(fd, stat.S_IMODE(info.st_mode) & 0o777)
        try:
            acl = os.getxattr(original, _ACL)
        except OSError as error:
            if error.errno not in (errno.ENODATA, errno.ENOTSUP):
                raise
        else:
            os.setxattr(fd, _ACL, acl)
        os.fsync(fd)
        return _sha256(fd)
    finally:
        os.close(fd)


# --- archiving (L9) ---------------------------------------------------------------------------


def archive_note(approvals: Sequence[ApprovalFacts | Approval]) -> str:
    """The certificate's words for an archiving (L9): to which agreement the data went, then
    that the local copy was deleted (the deletion run's part). Each transfer agreement is
    named once by its reference, as last recorded (a later record amends an earlier one),
    with the day it was recorded (store rows only) and how long it runs."""
    latest: dict[str, ApprovalFacts | Approval] = {}
    for approval in approvals:
        if str(approval.kind) == ApprovalKind.TRANSFER_AGREEMENT.value:
            latest.pop(approval.reference, None)
            latest[approval.reference] = approval
    if not latest:
        raise Refused("no transfer agreement with an external archive is on record",
                      rule="L9", hint="record it with 'vokter approval add PROJECT --kind "
                      "transfer_agreement --ref REF' before the data is archived")
    parts = []
    for reference, approval in latest.items():
        dated = []
        if isinstance(approval, Approval):
            dated.append(f"recorded {approval.recorded_at.astimezone(UTC).date().isoformat()}")
        if approval.valid_until is not None:
            dated.append(f"valid until {approval.valid_until.isoformat()}")
        parts.append(f"{reference} ({', '.join(dated)})" if dated else reference)
    agreements = "transfer agreement" if len(parts) == 1 else "transfer agreements"
    return redact_identity_numbers(
        f"transferred to the external archive under {agreements} {'; '.join(parts)}, "
        "then deleted locally (L9)")
