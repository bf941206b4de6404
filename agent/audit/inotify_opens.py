"""The access log's fallback source: opens in the zones seen through inotify (A5).

Used when fanotify is not available (or ``access_log_source = "inotify"``). inotify says that
a file was opened, never by whom: records from here carry uid -1 and user, pid and program
"unknown". The close events are asked for only to keep the kernel from merging two opens of
one file into one event (it merges an event with the one before it only if they are
identical). The watching itself is ``agent.access.zone_inotify``'s.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from agent.access.live import GateViewHolder
from agent.access.plan import ZoneAccess
from agent.access.zone_inotify import IN_CLOSE, IN_OPEN, ZoneInotify, parse_events

__all__ = ["InotifyOpens", "parse_events"]


class InotifyOpens(ZoneInotify):
    FILE_MASK = IN_OPEN | IN_CLOSE
    THREAD_NAME = "vokterd-access-inotify"

    def __init__(
        self,
        views: GateViewHolder,
        *,
        on_open: Callable[[str, ZoneAccess], None],
        on_overflow: Callable[[], None],
        on_problem: Callable[[str, dict[str, Any]], None],
    ) -> None:
        super().__init__(views, on_overflow=on_overflow, on_problem=on_problem)
        self._on_open = on_open

    def _file_event(self, path: str, mask: int, zone: ZoneAccess) -> None:
        if mask & IN_OPEN:
            self._on_open(path, zone)
