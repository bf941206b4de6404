"""Fixtures of the end-to-end suite."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.daemon import RunningDaemon
from tests.support.drill import running_dated


@pytest.fixture
def dated_daemon(enclave_root: Path) -> Iterator[RunningDaemon]:
    """A daemon on a drill clock set to 2026-01-05, with the shipped policy."""
    with running_dated(enclave_root) as running:
        yield running
