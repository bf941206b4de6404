"""The storage watcher's queue: each path once, and bounded (S4)."""

from __future__ import annotations

import pytest

from agent.storage import watcher


def test_s4_a_path_named_twice_waits_once() -> None:
    queue = watcher._Queue()
    assert queue.put("/z/a") and queue.put("/z/b") and queue.put("/z/a")
    assert len(queue) == 2
    assert queue.get() == "/z/a" and queue.get() == "/z/b"


def test_s4_a_flood_of_paths_becomes_one_full_scan_not_unbounded_memory(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(watcher, "MAX_PENDING", 3)
    queue = watcher._Queue()
    assert all(queue.put(f"/z/{i}") for i in range(3))
    assert queue.put("/z/1")  # already waiting: no growth
    assert not queue.put("/z/new")  # full: dropped, the caller asks for a full scan
    assert len(queue) == 0
    queue.close()
    assert queue.get() is None
