"""Opening the database and running transactions against it.

SQLite (the default) gets WAL, foreign keys and a busy timeout on every connection; PostgreSQL
is used as is. Writes are serialised: inside one daemon by a lock, and across daemons sharing a
PostgreSQL database by a transaction-scoped advisory lock, because the audit chain needs each
new event to see the one before it.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError
from sqlmodel import Session, create_engine

from agent.errors import StoreError

#: Key of the advisory lock that serialises writers on PostgreSQL ("VOKTER" in ASCII).
WRITE_LOCK_KEY = 0x564F4B544552


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA secure_delete=ON")
    cursor.close()


def make_engine(url: str) -> Engine:
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    try:
        if url.startswith("sqlite"):
            engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 10})
            event.listen(engine, "connect", _sqlite_pragmas)
        else:
            engine = create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=10)
    except (SQLAlchemyError, ImportError, ValueError) as exc:
        raise StoreError(f"cannot open database: {exc.__class__.__name__}: {exc}") from None
    return engine


def redact_url(url: str) -> str:
    """A database URL fit for logs and status: the password never leaves the config, whether
    it sits in the authority or in the query string."""
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        return "(unparseable database URL)"
    secret_keys = [key for key in parsed.query if key.lower() in ("password", "passfile")]
    if secret_keys:
        parsed = parsed.update_query_dict({key: "***" for key in secret_keys})
    return parsed.render_as_string(hide_password=True)


class Store:
    """The database, with the two ways Vokter touches it: read, and serialised write."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)
        self.backend = self.engine.dialect.name
        self._write_lock = threading.Lock()

    @contextmanager
    def read(self) -> Iterator[Session]:
        with Session(self.engine, expire_on_commit=False) as session:
            yield session

    @contextmanager
    def write(self) -> Iterator[Session]:
        """One transaction: everything in it, the audit event included, commits or none does."""
        with self._write_lock, Session(self.engine, expire_on_commit=False) as session:
            if self.backend == "postgresql":
                session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": WRITE_LOCK_KEY})
            yield session
            session.commit()

    def ping(self) -> None:
        try:
            with self.engine.connect() as connection:
                connection.execute(text("SELECT 1"))
        except SQLAlchemyError as exc:
            raise StoreError(f"database not reachable: {exc.__class__.__name__}") from None

    def close(self) -> None:
        self.engine.dispose()
