"""Shared fixtures. They build real things: SQLite files and PostgreSQL schemas, Unix users,
a running vokterd. PostgreSQL tests never skip silently: without VOKTER_TEST_PG_URL (which
'make test' sets) they fail, unless VOKTER_SKIP_PG=1 says to skip them on purpose."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from agent.api.dispatch import Caller
from agent.api.server import SocketServer
from agent.clock import FakeClock
from agent.services import Services
from agent.store import Store
from agent.store.migrate import upgrade
from tests.support.daemon import RunningDaemon, make_enclave_root, remove_enclave_root
from tests.support.services import build_services
from tests.support.users import UserFactory


def postgres_base_url() -> str:
    url = os.environ.get("VOKTER_TEST_PG_URL")
    if url:
        return url
    if os.environ.get("VOKTER_SKIP_PG") == "1":
        pytest.skip("PostgreSQL tests skipped on request (VOKTER_SKIP_PG=1)")
    pytest.fail(
        "VOKTER_TEST_PG_URL is not set: run the suite with 'make test', which brings up "
        "PostgreSQL, or set VOKTER_SKIP_PG=1 to skip the PostgreSQL tests knowingly"
    )


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A PostgreSQL URL whose search_path is a fresh schema, dropped afterwards."""
    base = postgres_base_url()
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(base)
    with admin.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield f"{base}?options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'vokter.db'}"
    return str(request.getfixturevalue("pg_url"))


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    opened = Store(database_url)
    upgrade(opened.engine)
    yield opened
    opened.close()


@pytest.fixture
def fake_clock() -> FakeClock:
    return FakeClock(datetime(2026, 11, 23, 12, 0, tzinfo=UTC))


@pytest.fixture
def services(store: Store, fake_clock: FakeClock, tmp_path: Path) -> Services:
    return build_services(store, fake_clock, tmp_path)


@pytest.fixture
def root_caller() -> Caller:
    return Caller(uid=0, gid=0, pid=1, name="root")


@pytest.fixture
def unix_users() -> Iterator[UserFactory]:
    factory = UserFactory()
    try:
        yield factory
    finally:
        factory.cleanup()


@pytest.fixture
def enclave_root() -> Iterator[Path]:
    root = make_enclave_root()
    try:
        yield root
    finally:
        remove_enclave_root(root)


@pytest.fixture
def daemon(enclave_root: Path) -> Iterator[RunningDaemon]:
    running = RunningDaemon(enclave_root)
    running.start()
    try:
        yield running
    finally:
        running.stop()
    # S4: whatever the test did, no identity number reached the daemon's records.
    assert running.identity_numbers_recorded() == 0


@pytest.fixture
def sqlite_services(tmp_path: Path) -> Iterator[Services]:
    """Services on a SQLite store, for tests that are not about the database backend."""
    from tests.api.inprocess import make_sqlite_services

    built = make_sqlite_services(tmp_path)
    yield built
    built.store.close()


@pytest.fixture
def socket_dir() -> Iterator[Path]:
    """A directory every test user can reach (pytest's tmp_path is 0700)."""
    from tests.api.inprocess import public_dir

    with public_dir() as path:
        yield path


@pytest.fixture
def server(sqlite_services: Services, socket_dir: Path) -> Iterator[SocketServer]:
    """An in-process SocketServer wired as vokterd wires it."""
    from tests.api.inprocess import make_server

    running = make_server(sqlite_services, socket_dir / "vokterd.sock")
    running.start()
    try:
        yield running
    finally:
        running.stop()
