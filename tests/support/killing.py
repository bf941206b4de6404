"""Killing a child process at a chosen point, to test what resumes after SIGKILL."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path


def kill_at_marker(argv: list[str], marker: Path, what: str) -> None:
    """Run ``argv``; once it has written ``marker`` (and waits there), SIGKILL it."""
    child = subprocess.Popen(argv)
    try:
        deadline = time.monotonic() + 120  # a guard against a hang, not a timing assertion
        while not marker.exists():
            assert child.poll() is None, f"the {what} ended before it could be killed"
            assert time.monotonic() < deadline, f"the {what} never reached the kill point"
            time.sleep(0.02)
        os.kill(child.pid, signal.SIGKILL)
    finally:
        if child.poll() is None:
            child.kill()
        child.wait()
    assert child.returncode == -signal.SIGKILL
