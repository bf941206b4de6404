from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.api.server import SocketServer
from agent.services import Services
from tests.api.inprocess import make_server, make_sqlite_services, public_dir


@pytest.fixture
def sqlite_services(tmp_path: Path) -> Iterator[Services]:
    services = make_sqlite_services(tmp_path)
    yield services
    services.store.close()


@pytest.fixture
def socket_dir() -> Iterator[Path]:
    with public_dir() as path:
        yield path


@pytest.fixture
def server(sqlite_services: Services, socket_dir: Path) -> Iterator[SocketServer]:
    running = make_server(sqlite_services, socket_dir / "vokterd.sock")
    running.start()
    try:
        yield running
    finally:
        running.stop()
