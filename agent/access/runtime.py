"""The access list's moving parts inside the daemon: gate, drift repair, expiry, periodic check.

The gate's reader threads must answer the kernel quickly and never wait for the database, so
whatever they observe (a denied open, an attribute change) is put on a queue; one worker thread
repairs drift and writes the audit events. Denials are aggregated: the first one of a program
opening a file is recorded at once, repeats within a minute become one event with a count, so a
loop cannot flood the trail and nothing is dropped silently.
"""

from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from apscheduler.schedulers.background import BackgroundScheduler  # type: ignore[import-untyped]

from agent.access.enforce import repair_path
from agent.access.expiry import SWEEP_SECONDS, expire_memberships
from agent.access.gate import AccessGate, DeniedOpen
from agent.access.processes import program_name
from agent.access.service import enforce_plan
from agent.access.sync import all_plans, leader_reads_after_end, publish_gate_view
from agent.access.users import name_of_uid
from agent.api.dispatch import Caller, RequestContext
from agent.audit.access_recorder import AccessRecorder
from agent.audit.redact import redact_identity_numbers
from agent.errors import VokterError
from agent.services import Services

log = structlog.get_logger("vokterd.access")

DENIAL_WINDOW_SECONDS = 60.0
#: The safety net behind the attribute events: every file of every zone, this often.
FULL_CHECK_SECONDS = 15 * 60


@dataclass(frozen=True, slots=True)
class AttribChange:
    path: str
    pid: int
    program: str


@dataclass(frozen=True, slots=True)
class GateProblem:
    kind: str
    details: dict[str, Any]


AccessEvent = DeniedOpen | AttribChange | GateProblem


@dataclass(slots=True)
class _DenialWindow:
    started: float
    repeats: int = 0
    denial: DeniedOpen | None = field(default=None)


class AccessRuntime:
    def __init__(self, services: Services, actor: Caller) -> None:
        self.services = services
        self.actor = actor
        self.gate: AccessGate | None = None
        #: The data-access log (A5): fed by the gate's allowed opens, or by inotify without it.
        self.access_log = AccessRecorder(services, actor)
        self._events: queue.SimpleQueue[AccessEvent | None] = queue.SimpleQueue()
        self._windows: dict[tuple[int, str, str], _DenialWindow] = {}
        self._worker = threading.Thread(target=self._work, name="access-worker", daemon=True)
        self._scheduler = BackgroundScheduler(timezone="UTC")

    # --- life cycle ---------------------------------------------------------------------

    def start(self) -> None:
        publish_gate_view(self.services)
        self._worker.start()
        gate = AccessGate(
            self.services.gate_view,
            on_denied=self._events.put,
            # Name the program now: by the time the worker gets to it, it has often exited.
            on_attrib=lambda path, pid: self._events.put(
                AttribChange(path, pid, program_name(pid, gone="unknown (process ended)"))),
            on_problem=self._on_problem,
            on_allowed=self.access_log.fanotify_open if self.access_log.wants_fanotify else None,
        )
        try:
            gate.start()
        except OSError as error:
            self.services.watchers.append("access gate: unavailable, POSIX ACLs only")
            self._audit("access.gate_unavailable", outcome="failed",
                        details={"error": error.strerror or str(error)})
            log.error("gate_unavailable", error=str(error))
        else:
            self.gate = gate
            self.services.watchers.append(
                f"access gate: fanotify, {gate.marked_directories} directories marked")
            # A restart leaves a gap in what the gate saw: say so in the trail.
            self._audit("access.gate_start",
                        details={"marked_directories": gate.marked_directories})
        self.access_log.start(gate_running=self.gate is not None)
        self._scheduler.add_job(self.sweep_expiries, "interval", seconds=SWEEP_SECONDS,
                                id="expiry", max_instances=1, coalesce=True)
        self._scheduler.add_job(self.check_all, "interval", seconds=FULL_CHECK_SECONDS,
                                id="full-check", max_instances=1, coalesce=True,
                                next_run_time=_soon())
        self._scheduler.start()

    def stop(self) -> None:
        self._scheduler.shutdown(wait=True)
        if self.gate is not None:
            self.gate.stop()
        self.access_log.stop()
        self._events.put(None)
        self._worker.join(timeout=10)

    # --- jobs -----------------------------------------------------------------------------

    def sweep_expiries(self) -> None:
        try:
            ended = expire_memberships(self.services, self.actor)
        except Exception:
            log.exception("expiry_sweep_failed")
            return
        for removal in ended:
            log.info("membership_expired", project=removal["project"], user=removal["user"])

    def check_all(self) -> None:
        """Converge every zone to the stored list (after a crash, a restart, a missed event)."""
        try:
            with self.services.store.read() as session:
                plans = all_plans(
                    session, leader_reads_after_end=leader_reads_after_end(self.services))
            for plan in plans:
                report = enforce_plan(plan)
                if report.changed:
                    self._audit("access.check", outcome="violation", project=plan.project,
                                rule="A1", details={"checked": report.checked,
                                                    "repaired": report.changed,
                                                    "periodic": True})
        except Exception:
            log.exception("full_check_failed")

    # --- what the gate reports ------------------------------------------------------------

    def _on_problem(self, kind: str, details: dict[str, Any]) -> None:
        """Called on the gate's threads: queue it, never wait for the database there."""
        self._events.put(GateProblem(kind, dict(details)))

    def _work(self) -> None:
        while True:
            try:
                event = self._events.get(timeout=1.0)
            except queue.Empty:
                self._flush_windows(time.monotonic())
                continue
            if event is None:
                self._flush_windows(float("inf"))
                return
            try:
                if isinstance(event, AttribChange):
                    self._repair(event)
                elif isinstance(event, GateProblem):
                    log.error("gate_problem", kind=event.kind, **event.details)
                    self._audit(f"access.gate_{event.kind}", outcome="failed",
                                details={k: redact_identity_numbers(str(v))
                                         for k, v in event.details.items()})
                else:
                    self._record_denial(event, time.monotonic())
            except Exception:
                log.exception("access_event_failed")

    def _repair(self, change: AttribChange) -> None:
        zone = self.services.gate_view.current().zone_of(change.path)
        if zone is None:
            return
        drift = repair_path(zone, change.path)
        if drift is None:
            return
        self._audit(
            "access.drift",
            outcome="violation",
            project=zone.project,
            target=redact_identity_numbers(drift.path),
            rule="A1",
            details={"path": redact_identity_numbers(drift.path), "found": drift.found,
                     "set": drift.set, "pid": change.pid, "program": change.program,
                     "zone": zone.kind.value},
        )

    def _record_denial(self, denial: DeniedOpen, now: float) -> None:
        key = (denial.uid, denial.path, denial.program)
        window = self._windows.get(key)
        if window is None or now - window.started >= DENIAL_WINDOW_SECONDS:
            if window is not None:
                self._emit_repeats(window)
            self._windows[key] = _DenialWindow(started=now, denial=denial)
            self._audit_denial(denial, count=1)
        else:
            window.repeats += 1
            window.denial = denial
        self._flush_windows(now)

    def _flush_windows(self, now: float) -> None:
        for key, window in list(self._windows.items()):
            if now - window.started >= DENIAL_WINDOW_SECONDS:
                self._emit_repeats(window)
                del self._windows[key]

    def _emit_repeats(self, window: _DenialWindow) -> None:
        if window.repeats and window.denial is not None:
            self._audit_denial(window.denial, count=window.repeats)
            window.repeats = 0

    def _audit_denial(self, denial: DeniedOpen, *, count: int) -> None:
        self._audit(
            "file.open_denied",
            outcome="refused",
            project=denial.zone.project,
            target=redact_identity_numbers(denial.path),
            rule="A1",
            details={"uid": denial.uid, "user": name_of_uid(denial.uid), "pid": denial.pid,
                     "program": redact_identity_numbers(denial.program),
                     "zone": denial.zone.kind.value, "count": count},
        )

    def _audit(self, action: str, *, outcome: str = "ok", project: str | None = None,
               target: str | None = None, rule: str | None = None,
               details: dict[str, Any] | None = None) -> None:
        try:
            with self.services.store.write() as session:
                RequestContext(self.actor, self.services).audit(
                    session, action, outcome=outcome, project=project, target=target,
                    rule=rule, details=details)
        except VokterError as error:
            log.error("access_event_not_audited", action=action, error=error.one_line())


def _soon() -> datetime:
    """The first full check runs shortly after start: the daemon may have missed changes."""
    # APScheduler schedules in real time; the injected clock governs decisions only.
    return datetime.now(UTC) + timedelta(seconds=5)  # wall-clock: the scheduler's first run
