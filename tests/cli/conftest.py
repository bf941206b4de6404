from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.api.server import SocketServer
from agent.services import Services
from tests.api.inprocess import make_server, make_sqlite_services, public_dir


@pytest.fixture(autouse=True)
def _no_config_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VOKTER_CONFIG", raising=False)
    monkeypatch.setenv("COLUMNS", "200")


@pytest.fixture
def sqlite_services(tmp_path: Path) -> Iterator[Services]:
    services = make_sqlite_services(tmp_path)
    yield services
    services.store.close()


@pytest.fixture
def server(sqlite_services: Services) -> Iterator[SocketServer]:
    with public_dir() as directory:
        running = make_server(sqlite_services, directory / "vokterd.sock")
        running.start()
        try:
            yield running
        finally:
            running.stop()
