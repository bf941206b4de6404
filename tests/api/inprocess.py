"""An in-process vokterd socket: real SocketServer, real dispatch, real SQLite store.

Shared by tests/api and tests/cli. The socket lives in a directory made mode 0755 (not pytest's
0700 tmp_path), so that clients running as other Unix users can reach it.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlmodel import col, select

from agent.access.users import name_of_uid
from agent.api.dispatch import dispatch, record_refusal
from agent.api.server import SocketServer
from agent.clock import FakeClock
from agent.operations import OPERATIONS
from agent.services import Services
from agent.store import AuditEvent, Store
from agent.store.migrate import upgrade
from tests.support.services import build_services


def make_sqlite_services(directory: Path, clock: FakeClock | None = None) -> Services:
    """Services as tests/conftest.py builds them, on a SQLite file in ``directory``."""
    store = Store(f"sqlite:///{directory}/v.db")
    upgrade(store.engine)
    return build_services(
        store, clock or FakeClock(datetime(2026, 11, 23, 12, 0, tzinfo=UTC)), directory
    )


def audit_events(services: Services) -> list[AuditEvent]:
    with services.store.read() as session:
        return list(session.exec(select(AuditEvent).order_by(col(AuditEvent.seq))).all())


@contextmanager
def public_dir() -> Iterator[Path]:
    """A fresh directory every user may traverse (mode 0755), removed afterwards."""
    path = Path(tempfile.mkdtemp(prefix="vokter-api-"))
    try:
        path.chmod(0o755)
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def make_server(services: Services, path: Path, **options: Any) -> SocketServer:
    """A SocketServer wired as agent.daemon wires it."""
    return SocketServer(
        path,
        handle=lambda message, caller: dispatch(message, caller, services, OPERATIONS),
        refuse=lambda caller, error: record_refusal(services, caller, "request", error, None),
        name_of=name_of_uid,
        **{"timeout": 1.0, **options},
    )


