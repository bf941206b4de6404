"""The key store: each project's keyset, kept in the database only wrapped by the master key.

Three guarantees shape this module:

- a keyset exists unwrapped only in memory, for as long as one request needs it: nothing is
  cached, so a shredded key is gone for every request after the shred commits;
- a master-key rotation re-wraps every live keyset in one transaction and only then makes the
  new key the master key (``master.key.next`` renamed over ``master.key``); a crash in between
  is finished or undone at the next start, by what the database names;
- the daemon refuses to start when the master key does not unwrap what the database holds,
  rather than ever making a new key over existing keysets.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlmodel import Session, col, func, select

from agent.clock import Clock, SystemClock
from agent.config import Config
from agent.crypto import master as master_file
from agent.crypto.keyset import DEFAULT_SEGMENT_SIZE, Keyset, new_keyset
from agent.crypto.wrapping import MasterKey, keyset_associated_data, unwrap_keyset, wrap_keyset
from agent.errors import (
    AlreadyExists,
    KeyDestroyed,
    KeyStoreUnavailable,
    NotFound,
    Refused,
)
from agent.store import AuditEvent, Store
from agent.store.tables import Project, ProjectKeyset

#: Audited by the rotation, and read back by ``status`` for the date of the last one.
ROTATED_ACTION = "keys.master_rotated"

#: Called inside the rotation's transaction with its result, to audit it in the same commit.
Recorder = Callable[[Session, dict[str, Any]], None]


def _when_and_who(row: ProjectKeyset) -> str:
    when = row.destroyed_at.date().isoformat() if row.destroyed_at else "an unknown date"
    return f"on {when} by {row.destroyed_by or 'an unknown user'}"


def destroyed_error(row: ProjectKeyset) -> KeyDestroyed:
    return KeyDestroyed(
        f"the key of project {row.project_id} was destroyed {_when_and_who(row)} "
        "(crypto-shredded); files encrypted under it cannot be decrypted by anyone",
        rule="S3",
    )


@dataclass(frozen=True)
class _LiveKeyset:
    project_id: str
    master_key_id: str
    wrapped: bytes


def _live_keysets(store: Store) -> list[_LiveKeyset]:
    with store.read() as session:
        rows = session.exec(
            select(ProjectKeyset).where(col(ProjectKeyset.wrapped).is_not(None))
        ).all()
        return [_LiveKeyset(r.project_id, r.master_key_id, r.wrapped or b"") for r in rows]


class KeyStore:
    """The daemon's one handle on keys. Holds the master key; hands out keysets unwrapped."""

    def __init__(self, store: Store, directory: Path, master: MasterKey, source: str,
                 where: Path, *, clock: Clock | None = None,
                 random: Callable[[int], bytes] = os.urandom,
                 segment_size: Callable[[], int] = lambda: DEFAULT_SEGMENT_SIZE) -> None:
        self._store = store
        self.directory = directory
        self._master = master
        self.source = source
        #: The file the master key was read from (the key store's or the credential).
        self.where = where
        self._clock: Clock = clock or SystemClock()
        self._random = random
        #: The policy's segment size (S3) when a keyset is made; read then, so a reload counts.
        self._segment_size = segment_size
        self._lock = threading.Lock()  # guards _master; never held while waiting on the store
        self._rotating = threading.Lock()

    def __repr__(self) -> str:
        return (f"KeyStore(directory={str(self.directory)!r}, source={self.source!r}, "
                f"master_key_id={self.master_key_id!r})")

    @property
    def master_key_id(self) -> str:
        return self._current_master().key_id

    def _current_master(self) -> MasterKey:
        with self._lock:
            return self._master

    # --- keysets ----------------------------------------------------------------------------

    def keyset(self, project_id: str) -> Keyset:
        """The project's keyset, unwrapped; made on first use for a project created before
        keysets existed; ``KeyDestroyed`` after shred-key."""
        with self._store.read() as session:
            row = session.get(ProjectKeyset, project_id)
        if row is None:
            with self._store.write() as session:
                row = session.get(ProjectKeyset, project_id)
                if row is None:
                    if session.get(Project, project_id) is None:
                        raise NotFound(f"no project {project_id}",
                                       hint="see 'vokter project list'")
                    row = self._new_row(project_id, self._clock.now())
                    session.add(row)
        if row.wrapped is not None and row.master_key_id != self.master_key_id:
            # A rotation by this daemon may be between its commit and taking the new key:
            # wait it out and read again, rather than tell the user to restart.
            with self._rotating, self._store.read() as session:
                row = session.get(ProjectKeyset, project_id) or row
        return self._unwrap(row)

    def _unwrap(self, row: ProjectKeyset) -> Keyset:
        if row.wrapped is None:
            raise destroyed_error(row)
        master = self._current_master()
        if row.master_key_id != master.key_id:
            raise KeyStoreUnavailable(
                f"the keyset of project {row.project_id} is wrapped under master key "
                f"{row.master_key_id}, not the key this daemon holds ({master.key_id})",
                rule="S5", hint="the master key was rotated by another daemon: restart vokterd",
            )
        return unwrap_keyset(row.wrapped, master, keyset_associated_data(row.project_id))

    def _new_row(self, project_id: str, now: datetime) -> ProjectKeyset:
        master = self._current_master()
        keyset = new_keyset(segment_size=self._segment_size(), random=self._random)
        return ProjectKeyset(
            project_id=project_id,
            wrapped=wrap_keyset(keyset, master, keyset_associated_data(project_id),
                                random=self._random),
            master_key_id=master.key_id,
            created_at=now,
        )

    def create(self, session: Session, project_id: str, now: datetime) -> None:
        """The new project's keyset, in the project-creation transaction."""
        existing = session.get(ProjectKeyset, project_id)
        if existing is not None:
            raise AlreadyExists(
                f"project {project_id} already had a keyset"
                + (" that was crypto-shredded; its id is not reused" if existing.wrapped is None
                   else ""),
                rule="S3",
            )
        session.add(self._new_row(project_id, now))

    # --- crypto-shredding -------------------------------------------------------------------

    def shred(self, session: Session, project_id: str, now: datetime,
              actor: str) -> dict[str, Any]:
        """Destroy the project's wrapped keyset in ``session``, leaving a tombstone. The bytes
        are overwritten before they are dropped; ``purge`` then clears old copies out of the
        database files once this commits."""
        row = session.get(ProjectKeyset, project_id)
        had_keyset = row is not None
        if row is None:
            # Never used, so never made: the tombstone stops a keyset being made later.
            row = ProjectKeyset(project_id=project_id, wrapped=None,
                                master_key_id=self.master_key_id, created_at=now)
        elif row.wrapped is None:
            raise Refused(f"the key of project {project_id} was already destroyed "
                          f"{_when_and_who(row)}; there is nothing left to shred", rule="S3")
        else:
            row.wrapped = bytes(len(row.wrapped))
            session.add(row)
            session.flush()
        row.wrapped = None
        row.destroyed_at = now
        row.destroyed_by = actor
        session.add(row)
        session.flush()
        return {
            "project": project_id,
            "destroyed_at": now.isoformat(),
            "destroyed_by": actor,
            "had_keyset": had_keyset,
            "master_key_id": row.master_key_id,
        }

    def purge(self) -> dict[str, Any]:
        """Clear deleted rows out of the database files, outside any transaction: SQLite
        (secure_delete is on for every connection) checkpoints the WAL into the database and
        truncates it; PostgreSQL rewrites the table without its dead row versions."""
        engine = self._store.engine
        if self._store.backend == "sqlite":
            with engine.connect() as connection:
                busy = 1
                for _attempt in range(20):
                    result = connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
                    busy = int(result.one()[0])
                    if not busy:
                        break
            return {"purged": not busy, "purge": "sqlite wal_checkpoint(TRUNCATE)"}
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.exec_driver_sql("VACUUM FULL project_keyset")
        return {"purged": True, "purge": "postgresql VACUUM FULL project_keyset"}

    # --- master-key rotation ------------------------------------------------------------------

    def rotate_master(self, now: datetime, *, record: Recorder | None = None) -> dict[str, Any]:
        """A new master key; every live keyset re-wrapped under it in one transaction; the
        files encrypted under the keysets are untouched (their keys do not change)."""
        if self.source == master_file.SOURCE_CREDENTIAL:
            raise Refused(
                f"the master key comes from the systemd credential {self.where}, which vokterd "
                "cannot replace: rotate the credential instead",
                rule="S5", hint="docs/keys.md says how",
            )
        with self._rotating:
            old = self._current_master()
            new = MasterKey.generate(self._random)
            master_file.write_next_master_key(self.directory, new)
            committed = False
            try:
                with self._store.write() as session:
                    rows = session.exec(
                        select(ProjectKeyset).where(col(ProjectKeyset.wrapped).is_not(None))
                    ).all()
                    for row in rows:
                        data = keyset_associated_data(row.project_id)
                        keyset = unwrap_keyset(row.wrapped or b"", old, data)
                        row.wrapped = wrap_keyset(keyset, new, data, random=self._random)
                        row.master_key_id = new.key_id
                        session.add(row)
                    session.flush()
                    result = {"old_master_key_id": old.key_id,
                              "master_key_id": new.key_id, "rewrapped": len(rows),
                              "rotated_at": now.isoformat()}
                    if record is not None:
                        record(session, result)
                    # Committed here, with the store's write lock still held, so that no other
                    # write can wrap a new keyset under the old key in between.
                    session.commit()
                    committed = True
                    with self._lock:
                        self._master = new
            finally:
                if not committed:
                    master_file.discard_next_master_key(self.directory)
            master_file.promote_next_master_key(self.directory)
        return result

    def status(self) -> dict[str, Any]:
        """What an operator checks: ids, where the key comes from, counts; never key bytes."""
        with self._store.read() as session:
            live = session.exec(select(func.count()).select_from(ProjectKeyset)
                                .where(col(ProjectKeyset.wrapped).is_not(None))).one()
            destroyed = session.exec(select(func.count()).select_from(ProjectKeyset)
                                     .where(col(ProjectKeyset.destroyed_at).is_not(None))).one()
            rotated = session.exec(
                select(AuditEvent.time)
                .where(AuditEvent.action == ROTATED_ACTION, AuditEvent.outcome == "ok")
                .order_by(col(AuditEvent.seq).desc()).limit(1)
            ).first()
        return {
            "master_key_id": self.master_key_id,
            "source": self.source,
            "master_key_file": str(self.where),
            "keysets_live": int(live),
            "keysets_destroyed": int(destroyed),
            "last_rotated": rotated.isoformat() if rotated else None,
        }


def _finish_interrupted_rotation(directory: Path, live: list[_LiveKeyset]) -> None:
    """A ``master.key.next`` left by a crash: the database decides. If its keysets name the
    next key, the rotation committed and only the rename is missing; if they name the current
    key (or there are none), it never committed and the next key is dropped. Anything else is
    left alone for the mismatch check to report: deleting it could lose the only good key."""
    next_path = directory / master_file.NEXT_KEY_FILE
    if not os.path.lexists(next_path):
        return
    named = {keyset.master_key_id for keyset in live}
    try:
        candidate: MasterKey | None = master_file.read_master_key_file(next_path)
    except KeyStoreUnavailable:
        candidate = None
    if candidate is not None and candidate.key_id in named:
        master_file.promote_next_master_key(directory)
        return
    current_path = directory / master_file.MASTER_KEY_FILE
    try:
        current: MasterKey | None = master_file.read_master_key_file(current_path)
    except (KeyStoreUnavailable, OSError):
        current = None
    if not named or (current is not None and current.key_id in named):
        master_file.discard_next_master_key(directory)


def open_key_store(config: Config, store: Store, *, clock: Clock | None = None,
                   environ: Mapping[str, str] | None = None,
                   segment_size: Callable[[], int] = lambda: DEFAULT_SEGMENT_SIZE) -> KeyStore:
    """The key store at daemon start: finishes an interrupted rotation, reads (or, before any
    keyset exists, makes) the master key, and refuses to start unless it unwraps every live
    keyset in the database."""
    directory = config.key_store
    live = _live_keysets(store)
    credential = master_file.credential_path(environ)
    if credential is None:
        master_file.check_key_store_folder(directory)
        _finish_interrupted_rotation(directory, live)
    master, source = master_file.load_master_key(directory, may_create=not live,
                                                 environ=environ)
    where = credential or directory / master_file.MASTER_KEY_FILE
    other = [keyset for keyset in live if keyset.master_key_id != master.key_id]
    if other:
        named = ", ".join(sorted({keyset.master_key_id for keyset in other}))
        raise KeyStoreUnavailable(
            f"the master key in {where} (id {master.key_id}) does not match the {len(other)} "
            f"wrapped keysets in the database (id {named}): restore the key store from its "
            "backup",
            rule="S5", hint="vokterd never makes a new master key over existing keysets",
        )
    for keyset in live:
        try:
            unwrap_keyset(keyset.wrapped, master, keyset_associated_data(keyset.project_id))
        except KeyStoreUnavailable:
            raise KeyStoreUnavailable(
                f"the wrapped keyset of project {keyset.project_id} does not unwrap under the "
                f"master key in {where} (id {master.key_id}): the database row is damaged",
                rule="S5", hint="restore the database from its backup",
            ) from None
    return KeyStore(store, directory, master, source, where, clock=clock,
                    segment_size=segment_size)
