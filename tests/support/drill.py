"""A daemon on a drill clock: its date is what the test writes in a file (agent.clock.FileClock),
so a test walks a running daemon through a project's life in seconds."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.support.daemon import RunningDaemon, ok


def set_clock(daemon: RunningDaemon, instant: str) -> None:
    clock = daemon.root / "clock"
    clock.write_text(instant + "\n")
    clock.chmod(0o644)


@contextmanager
def running_dated(enclave_root: Path, **policy_changes: str) -> Iterator[RunningDaemon]:
    """A daemon reading its date from ``enclave_root/clock`` (set to 2026-01-05), with the
    shipped policy changed as given (TOML values)."""
    running = RunningDaemon(enclave_root, extra_config=f'clock_file = "{enclave_root}/clock"\n',
                            policy_changes=policy_changes)
    set_clock(running, "2026-01-05T09:00:00+00:00")
    running.start()
    try:
        yield running
    finally:
        running.stop()
    assert running.identity_numbers_recorded() == 0


#: The project the drills walk (the one tests.e2e.test_access's helpers work on too).
PROJECT = "p4711"


def create_project(daemon: RunningDaemon, leader: str, end_date: str = "2026-03-31") -> None:
    """The drills' project, led by ``leader``, ending on ``end_date`` (the drill clock starts
    on 2026-01-05)."""
    ok(daemon.vokter("project", "create", PROJECT, "--title", "Night shifts", "--leader",
                     leader, "--end-date", end_date))
