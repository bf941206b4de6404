"""The daemon's sealer: signs a checkpoint over the trail so the unsealed tail stays short.

It seals (``agent.audit.sealing.seal``) at least every ``policy.audit.checkpoint_seconds`` when
the trail moved, at once when ``policy.audit.checkpoint_events`` events were committed since the
last seal (trail.py tells it of every commit), and once more when the daemon stops, so the last
checkpoint covers ``daemon.stop``. Damage stops the signing, not the thread: it retries with a
growing pause, and a database error is logged and retried at the next tick. Enforcement goes on
meanwhile: an attacked trail must not switch the access gate off.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from typing import Any

import structlog

from agent.api.dispatch import Caller
from agent.audit.sealing import SealResult, daemon_caller, seal
from agent.audit.trail import TRAIL, add_commit_listener, remove_commit_listener
from agent.services import Services
from agent.store.tables import AuditHead

#: ``seal`` too: one seal on demand (an auditor's checkpoint, an export) is the same as a tick's.
__all__ = ["MAX_BACKOFF_SECONDS", "Sealer", "seal", "seconds_until_due"]

log = structlog.get_logger("vokterd.sealer")

#: While the trail is damaged, retries slow down to at most this pause: each one verifies every
#: event since the last checkpoint, and the damage rarely goes away by itself.
MAX_BACKOFF_SECONDS = 60.0


def seconds_until_due(*, since_last: float, committed: int, checkpoint_seconds: float,
                      checkpoint_events: int, damaged_attempts: int) -> float:
    """How long the sealer may still wait (0: seal now). Damage slows the retries down
    (doubling, up to MAX_BACKOFF_SECONDS) whatever is committed meanwhile."""
    if damaged_attempts:
        pause = min(checkpoint_seconds * float(1 << min(damaged_attempts, 16)),
                    max(checkpoint_seconds, MAX_BACKOFF_SECONDS))
        return max(0.0, pause - since_last)
    if committed >= checkpoint_events:
        return 0.0
    return max(0.0, checkpoint_seconds - since_last)


def _describe(error: BaseException) -> str:
    one_line = getattr(error, "one_line", None)
    return str(one_line()) if callable(one_line) else type(error).__name__


class Sealer:
    """The thread that calls ``seal`` when due; ``stop`` seals a last time, synchronously."""

    def __init__(self, services: Services, actor: Caller | None = None) -> None:
        self._services = services
        self._actor = actor or daemon_caller()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._count_lock = threading.Lock()
        self._tick_lock = threading.Lock()
        self._committed = 0
        self._damaged_attempts = 0
        self._failing: str | None = None
        self._sealed_head: int | None = None
        self._last_attempt = services.clock.monotonic()
        self._thread: threading.Thread | None = None
        self.last_result: SealResult | None = None

    def start(self) -> None:
        add_commit_listener(self._on_commit)
        self._thread = threading.Thread(target=self._run, name="vokter-sealer", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> SealResult | None:
        """End the thread, then seal what is left (the caller recorded ``daemon.stop`` first)."""
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
        remove_commit_listener(self._on_commit)
        return self.tick(force=True)

    def wake(self) -> None:
        """Re-read the policy now (after a reload) rather than when the current wait ends."""
        self._wake.set()

    def _on_commit(self, rows: Sequence[Mapping[str, Any]]) -> None:
        threshold = self._services.policies.current().audit.checkpoint_events
        with self._count_lock:
            self._committed += len(rows)
            due = self._committed >= threshold
        if due:
            self._wake.set()

    def _seconds_until_due(self) -> float:
        policy = self._services.policies.current().audit
        with self._count_lock:
            committed = self._committed
        return seconds_until_due(
            since_last=self._services.clock.monotonic() - self._last_attempt,
            committed=committed, checkpoint_seconds=policy.checkpoint_seconds,
            checkpoint_events=policy.checkpoint_events, damaged_attempts=self._damaged_attempts,
        )

    def _run(self) -> None:
        while not self._stopping.is_set():
            wait = self._seconds_until_due()
            if wait > 0:
                self._wake.wait(wait)
                self._wake.clear()
                continue
            self.tick()

    def _trail_head(self) -> int:
        with self._services.store.read() as session:
            head = session.get(AuditHead, TRAIL)
            return head.seq if head is not None else 0

    def tick(self, *, force: bool = False) -> SealResult | None:
        """Seal if the trail moved since the last seal (or ``force``); None if nothing was
        tried or the database failed (logged; the next tick tries again)."""
        with self._tick_lock:
            self._last_attempt = self._services.clock.monotonic()
            with self._count_lock:
                self._committed = 0
            try:
                head = self._trail_head()
                if not force and not self._damaged_attempts and head == self._sealed_head:
                    return None
                result = seal(self._services, self._actor)
            except Exception as error:  # a database hiccup must not end the sealing
                self._note_failure(error)
                return None
            self._note(result, head)
            return result

    def _note_failure(self, error: BaseException) -> None:
        described = _describe(error)
        if described != self._failing:
            log.error("checkpoint_failed", error=described, retry="at the next tick")
        self._failing = described

    def _note(self, result: SealResult, head: int) -> None:
        if self._failing is not None:
            log.info("checkpoint_recovered")
            self._failing = None
        self.last_result = result
        damage = result.damage
        if damage is not None:
            self._damaged_attempts += 1
            if result.recorded:
                log.error("audit_trail_damaged", what=damage.what, kind=damage.kind,
                          seq=damage.seq, message=damage.message, sealing="stopped",
                          hint="run 'vokter audit verify'; see docs/audit.md")
            return
        if self._damaged_attempts:
            log.warning("audit_sealing_resumed")
            self._damaged_attempts = 0
        latest = result.latest.checkpoint.trail.seq if result.latest is not None else 0
        self._sealed_head = max(head, latest)
        if result.made is not None:
            log.debug("checkpoint", seq=result.made.checkpoint.trail.seq)
