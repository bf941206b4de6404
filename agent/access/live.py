"""The gate's current view of the access list, swapped whole when the list changes.

Readers (the fanotify gate thread, once per open) take ``current()`` without a lock: replacing
an attribute is atomic, and a ``GateView`` is immutable, so an open is judged against one
consistent list. Writers publish a new view after the change has committed; listeners (the gate
marking newly created zones) run before ``publish`` returns, so a request that changed access
does not answer its caller until the gate obeys the change.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from agent.access.plan import EMPTY_VIEW, GateView

ViewListener = Callable[[GateView], None]


class GateViewHolder:
    def __init__(self, view: GateView = EMPTY_VIEW) -> None:
        self._view = view
        self._listeners: list[ViewListener] = []
        self._publish_lock = threading.Lock()

    def current(self) -> GateView:
        return self._view

    def subscribe(self, listener: ViewListener) -> None:
        self._listeners.append(listener)

    def publish(self, view: GateView) -> None:
        with self._publish_lock:
            self._view = view
            for listener in list(self._listeners):
                listener(view)
