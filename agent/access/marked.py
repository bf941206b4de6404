"""The directories the gate has marked, by path and by the file handle fanotify names them with.

Why a map both ways: notification events name a directory only by its file handle, so the gate
turns the handle back into a path; the gate itself thinks in paths (which zone, which
directories to unmark when a zone leaves). A directory renamed within a zone keeps its handle
and is found again under its new path.

Reads (``path_of``, from the notification thread) take no lock: one dict lookup is atomic.
Changes are made under the gate's marking lock.
"""

from __future__ import annotations

import os

from agent.access.fanotify import HandleKey


class MarkedDirectories:
    def __init__(self) -> None:
        self._by_handle: dict[HandleKey, str] = {}
        self._by_path: dict[str, HandleKey] = {}

    def __len__(self) -> int:
        return len(self._by_path)

    def paths(self) -> list[str]:
        return list(self._by_path)

    def path_of(self, key: HandleKey) -> str | None:
        return self._by_handle.get(key)

    def remember(self, path: str, key: HandleKey | None) -> None:
        old = self._by_path.pop(path, None)
        if old is not None:
            self._by_handle.pop(old, None)
        if key is None:
            # Without a handle the directory is still gated; it is counted under a key of its own.
            key = HandleKey(-1, -1, os.fsencode(path))
        moved_from = self._by_handle.get(key)
        if moved_from is not None and moved_from != path:
            self._by_path.pop(moved_from, None)  # renamed within the zone
        self._by_handle[key] = path
        self._by_path[path] = key

    def forget(self, path: str) -> None:
        key = self._by_path.pop(path, None)
        if key is not None:
            self._by_handle.pop(key, None)

    def clear(self) -> None:
        self._by_handle.clear()
        self._by_path.clear()
