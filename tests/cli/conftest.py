from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _no_config_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VOKTER_CONFIG", raising=False)
    monkeypatch.setenv("COLUMNS", "200")
