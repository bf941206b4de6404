"""Opening the database: SQLite's safety settings on every connection, all-or-nothing writes,
and database URLs that never show a password."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlmodel import select

from agent.store import Project, Store, redact_url

EXPECTED_SQLITE_PRAGMAS = {
    "journal_mode": "wal",
    "foreign_keys": 1,
    "synchronous": 2,  # FULL
    "secure_delete": 1,
    "busy_timeout": 10000,
}


def sqlite_pragmas(store: Store) -> dict[str, object]:
    with store.engine.connect() as connection:
        return {
            name: connection.exec_driver_sql(f"PRAGMA {name}").scalar()
            for name in EXPECTED_SQLITE_PRAGMAS
        }


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[Store]:
    store = Store(f"sqlite:///{tmp_path / 'vokter.db'}")
    yield store
    store.close()


def test_sqlite_connection_is_wal_with_foreign_keys_full_sync_and_secure_delete(
    sqlite_store: Store,
) -> None:
    assert sqlite_store.backend == "sqlite"
    assert sqlite_pragmas(sqlite_store) == EXPECTED_SQLITE_PRAGMAS


def test_every_pooled_sqlite_connection_gets_the_pragmas(sqlite_store: Store) -> None:
    """Pragmas other than journal_mode are per connection: each new one must set them."""
    held = [sqlite_store.engine.connect() for _ in range(3)]
    try:
        for connection in held:
            assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            assert connection.exec_driver_sql("PRAGMA synchronous").scalar() == 2
            assert connection.exec_driver_sql("PRAGMA secure_delete").scalar() == 1
    finally:
        for connection in held:
            connection.close()

    seen: list[dict[str, object]] = []
    worker = threading.Thread(target=lambda: seen.append(sqlite_pragmas(sqlite_store)))
    worker.start()
    worker.join()
    assert seen == [EXPECTED_SQLITE_PRAGMAS]


def test_postgresql_backend_is_named(pg_url: str) -> None:
    store = Store(pg_url)
    try:
        assert store.backend == "postgresql"
        store.ping()
    finally:
        store.close()


def test_a_write_that_raises_commits_nothing(store: Store) -> None:
    row = Project(
        id="p1", title="t", leader="root", leader_uid=0, end_date=date(2030, 1, 1),
        data_root="/d", key_root="/k", export_root="/e", quarantine_root="/q",
        created_at=datetime(2026, 11, 23, tzinfo=UTC), created_by="root",
    )
    with pytest.raises(RuntimeError, match="halfway"), store.write() as session:
        session.add(row)
        session.flush()
        raise RuntimeError("halfway")
    with store.read() as session:
        assert session.exec(select(Project)).all() == []
    # The write lock was released: the next write goes through.
    with store.write() as session:
        session.execute(text("SELECT 1"))


# --- redact_url ---------------------------------------------------------------------------------

PASSWORD = "S3cr3t-pw"


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (f"postgresql://vokter:{PASSWORD}@db.example:5432/vokter",
         "postgresql://vokter:***@db.example:5432/vokter"),
        (f"postgresql+psycopg://vokter:{PASSWORD}@127.0.0.1/vokter?sslmode=require",
         "postgresql+psycopg://vokter:***@127.0.0.1/vokter?sslmode=require"),
        (f"postgresql://vokter:{PASSWORD}@db/vokter?options=-csearch_path%3Dvk",
         "postgresql://vokter:***@db/vokter?options=-csearch_path%3Dvk"),
    ],
)
def test_redact_url_hides_the_password_and_keeps_the_rest(url: str, shown: str) -> None:
    assert redact_url(url) == shown


@pytest.mark.parametrize(
    "password",
    [PASSWORD, "p@ss@word", "pass:word", "p%40ss", "pa/ss?x=1#y", "ünïcødé"],
)
def test_redact_url_never_shows_a_password_in_the_authority(password: str) -> None:
    redacted = redact_url(f"postgresql://vokter:{password}@db.example:5432/vokter")
    assert password not in redacted
    assert redacted.startswith("postgresql://vokter:***@")


@pytest.mark.parametrize(
    "url",
    [
        pytest.param(
            f"postgresql://vokter@db.example/vokter?password={PASSWORD}",
            id="password-query-parameter-with-user",
        ),
        pytest.param(
            f"postgresql://db.example/vokter?user=vokter&password={PASSWORD}",
            id="password-query-parameter-no-at",
        ),
    ],
)
def test_redact_url_never_shows_a_password_given_as_a_query_parameter(url: str) -> None:
    assert PASSWORD not in redact_url(url)


def test_redact_url_keeps_host_and_database_when_the_query_holds_an_at_sign() -> None:
    url = f"postgresql://vokter:{PASSWORD}@db.example/vokter?application_name=vk@host1"
    redacted = redact_url(url)
    assert PASSWORD not in redacted
    assert redacted.startswith("postgresql://vokter:***@db.example/vokter?")


@pytest.mark.parametrize("url", ["sqlite:////var/lib/vokter/vokter.db", "sqlite:///relative.db"])
def test_redact_url_leaves_a_sqlite_url_unchanged(url: str) -> None:
    assert redact_url(url) == url


def test_redact_url_keeps_user_host_and_database_of_a_url_without_password() -> None:
    redacted = redact_url("postgresql://vokter@db.example:5432/vokter")
    assert redacted.startswith("postgresql://vokter")
    assert redacted.endswith("@db.example:5432/vokter")
