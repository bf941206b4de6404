"""An attacker who can write the database but not read the key store, for the tamper tests.

They write the real database: the SQLite file with Python's own ``sqlite3`` module (as anyone
with write access to the file could), PostgreSQL through a connection of their own. They know
the published event format (docs/audit-format.md), so they recompute hashes correctly, but
having no MAC key they can only make up MACs.
"""

from __future__ import annotations

import secrets
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text
from sqlalchemy.engine import Connection

from agent.audit.chain import EventFields, event_hash
from agent.audit.keys import AuditKeys
from agent.audit.seal import extend, latest_stored, store_checkpoint, write_checkpoint_file
from agent.audit.trail import append_events
from agent.store import Store

T0 = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
PROJECTS = ("p1001", "p1002")


def sample_events(count: int, first: int = 0) -> list[EventFields]:
    """Varied events: two projects and events about no project, interleaved."""
    events = []
    for n in range(first, first + count):
        project = None if n % 3 == 0 else PROJECTS[n % 2]
        events.append(EventFields(
            time=T0 + timedelta(seconds=n, microseconds=n * 7), actor_uid=1000 + n % 4,
            actor=f"user{n % 4}", action="member.add" if n % 2 else "file.open",
            outcome="ok", project_id=project, target=f"/srv/zones/{project}/data/f{n}.csv",
            rule=None if n % 5 else "A5", details={"pid": 4000 + n, "count": n % 3}))
    return events


def append(store: Store, keys: AuditKeys, events: Sequence[EventFields]) -> None:
    with store.write() as session:
        append_events(session, events, mac_key=keys.mac_key)


def seal(store: Store, keys: AuditKeys, key_store: Path, now: datetime | None = None) -> int:
    """Checkpoint everything appended so far, as the daemon's sealer does: a row in the
    database and the copy in the key store. Returns the sealed sequence number."""
    with store.write() as session:
        previous = latest_stored(session)
        signed, damage = extend(session, keys, now or T0 + timedelta(hours=1),
                                None if previous is None else previous.checkpoint)
        assert damage is None, damage
        assert signed is not None
        store_checkpoint(session, signed)
    write_checkpoint_file(key_store, signed)
    return signed.checkpoint.trail.seq


def sqlite_path(store: Store) -> Path | None:
    if store.backend != "sqlite":
        return None
    database = store.engine.url.database
    assert database is not None
    return Path(database)


@contextmanager
def sqlite_file(path: Path) -> Iterator[Any]:
    """The attacker's hands on a SQLite database file: ``run(sql, **params)``, committed."""
    db = sqlite3.connect(path)
    try:
        yield _SqliteHands(db)
        db.commit()
    finally:
        db.close()


@contextmanager
def attacker(store: Store) -> Iterator[Any]:
    """A connection of the attacker's own to the same database: ``run(sql, **params)``."""
    path = sqlite_path(store)
    if path is not None:
        with sqlite_file(path) as hands:
            yield hands
        return
    engine = create_engine(store.url.replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        with engine.begin() as connection:
            yield _PgHands(connection)
    finally:
        engine.dispose()


class _SqliteHands:
    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def run(self, sql: str, **params: Any) -> list[tuple[Any, ...]]:
        return list(self.db.execute(sql, params))


class _PgHands:
    def __init__(self, connection: Connection) -> None:
        self.connection = connection

    def run(self, sql: str, **params: Any) -> list[tuple[Any, ...]]:
        result = self.connection.execute(text(sql), params)
        return [tuple(row) for row in result] if result.returns_rows else []


COLUMNS = ("seq", "time", "actor_uid", "actor", "action", "project_id", "project_seq", "target",
           "outcome", "rule", "details", "hash_alg", "prev_hash", "project_prev_hash", "hash",
           "mac")


_SELECT_EVENT = (
    "SELECT seq, time, actor_uid, actor, action, project_id, project_seq, target, outcome, "
    "rule, details, hash_alg, prev_hash, project_prev_hash, hash, mac "
    "FROM audit_event WHERE seq = :seq"
)
_INSERT_EVENT = (
    "INSERT INTO audit_event (seq, time, actor_uid, actor, action, project_id, project_seq, "
    "target, outcome, rule, details, hash_alg, prev_hash, project_prev_hash, hash, mac) "
    "VALUES (:seq, :time, :actor_uid, :actor, :action, :project_id, :project_seq, :target, "
    ":outcome, :rule, :details, :hash_alg, :prev_hash, :project_prev_hash, :hash, :mac)"
)


def event(hands: Any, seq: int) -> dict[str, Any]:
    [row] = hands.run(_SELECT_EVENT, seq=seq)
    return dict(zip(COLUMNS, row, strict=True))


def canonical(time: Any) -> str:
    """The stored time as the hash spells it (SQLite hands back text, PostgreSQL a datetime)."""
    if isinstance(time, str):
        return time.replace(" ", "T") + "Z"
    return str(time.strftime("%Y-%m-%dT%H:%M:%S.%fZ"))


def rehash(values: dict[str, Any]) -> str:
    """What the attacker can compute: the event's hash from the published format."""
    return event_hash(
        algorithm=values["hash_alg"], seq=values["seq"], time=canonical(values["time"]),
        actor_uid=values["actor_uid"], actor=values["actor"], action=values["action"],
        project_id=values["project_id"], project_seq=values["project_seq"],
        target=values["target"], outcome=values["outcome"], rule=values["rule"],
        details=values["details"], prev_hash=values["prev_hash"],
        project_prev_hash=values["project_prev_hash"])


def made_up_mac() -> str:
    return secrets.token_hex(32)


def swap(hands: Any, first: int, second: int) -> None:
    """Exchange two events' places (their sequence numbers), as an attacker reordering them."""
    hands.run("UPDATE audit_event SET seq = -1 WHERE seq = :a", a=first)
    hands.run("UPDATE audit_event SET seq = :a WHERE seq = :b", a=first, b=second)
    hands.run("UPDATE audit_event SET seq = :b WHERE seq = -1", b=second)


def close_gap(hands: Any, removed: int) -> None:
    """Renumber the events after a removed one down by one, so the trail looks gapless."""
    last = hands.run("SELECT max(seq) FROM audit_event")[0][0]
    for seq in range(removed + 1, last + 1):
        hands.run("UPDATE audit_event SET seq = :new WHERE seq = :old", new=seq - 1, old=seq)


def open_gap(hands: Any, at: int) -> None:
    """Renumber the events from ``at`` on up by one, making room for an inserted event."""
    last = hands.run("SELECT max(seq) FROM audit_event")[0][0]
    for seq in range(last, at - 1, -1):
        hands.run("UPDATE audit_event SET seq = :new WHERE seq = :old", new=seq + 1, old=seq)


def insert(hands: Any, values: dict[str, Any]) -> None:
    hands.run(_INSERT_EVENT, **values)


def forged_after(hands: Any, seq: int) -> dict[str, Any]:
    """An event the attacker makes up to follow ``seq``: well formed, hash right, MAC not."""
    values = event(hands, seq)
    values.update(seq=seq + 1, actor="root", action="member.add", project_id=None,
                  project_seq=None, project_prev_hash=None, target="mallory", rule=None,
                  details='{"reason":"backdated"}', prev_hash=values["hash"])
    values["hash"] = rehash(values)
    values["mac"] = made_up_mac()
    return values


def point_heads_at_what_is_left(hands: Any) -> None:
    """Set the head cache to the newest stored event of every chain, so that new events link
    to what the attacker left (a careful attacker's last step)."""
    hands.run("DELETE FROM audit_head")
    [(seq, digest)] = hands.run("SELECT seq, hash FROM audit_event ORDER BY seq DESC LIMIT 1")
    hands.run("INSERT INTO audit_head (chain, seq, hash) VALUES ('', :seq, :hash)",
              seq=seq, hash=digest)
    projects = [name for (name,) in hands.run(
        "SELECT DISTINCT project_id FROM audit_event WHERE project_id IS NOT NULL")]
    for project in projects:
        [(project_seq, digest)] = hands.run(
            "SELECT project_seq, hash FROM audit_event WHERE project_id = :p "
            "ORDER BY project_seq DESC LIMIT 1", p=project)
        hands.run("INSERT INTO audit_head (chain, seq, hash) VALUES (:p, :seq, :hash)",
                  p=project, seq=project_seq, hash=digest)
