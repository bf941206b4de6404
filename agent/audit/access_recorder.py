"""The data-access log's shell (A5): from the listener's threads to the audit trail.

The listener (the fanotify gate's reader, or the inotify fallback's) must answer the kernel at
once, so it only stamps the time and puts the open on a bounded queue; a full queue counts the
open as dropped instead of waiting. One worker thread drains the queue, names the users, merges
repeated opens (``agent.audit.access_log``) and writes whatever is due in one transaction: the
records of closed windows and a gap marker for every drop, so a burst of opens costs one commit
and a lost open is never silent. At start it marks the gap since the previous run; at stop it
writes out every window still open, then ``access_log.stop``.

The queue holds ``QUEUE_CAPACITY`` opens (about 200 bytes each, some 13 MB when full): at a
few thousand opens a second a stalled database has more than ten seconds before opens are lost,
and those are then counted in an ``overflow`` gap marker.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlmodel import col, select

from agent.access.gate import AllowedOpen
from agent.access.plan import ZoneAccess
from agent.access.users import name_of_uid
from agent.api.dispatch import Caller
from agent.audit.access_log import (
    DAEMON_STOP_ACTION,
    GAP_ACTION,
    LOG_ACTIONS,
    OPEN_ACTION,
    START_ACTION,
    STOP_ACTION,
    UNKNOWN,
    UNKNOWN_UID,
    AccessRecord,
    DropTally,
    Gap,
    OpenAggregator,
    OpenSeen,
    Source,
    gaps_for_projects,
    restart_gaps,
)
from agent.audit.chain import EventFields
from agent.audit.inotify_opens import InotifyOpens
from agent.audit.trail import append_events
from agent.config import ACCESS_LOG_SOURCES
from agent.services import Services
from agent.store.tables import AuditEvent

log = structlog.get_logger("vokterd.access_log")

QUEUE_CAPACITY = 65_536
#: How often the worker looks for closed windows and drops when no open arrives.
TICK_SECONDS = 1.0
#: Opens taken from the queue per round, so that a flood still lets windows close on time.
ROUND_LIMIT = 10_000
#: User names are looked up again after this long (an account renamed, a uid reused).
NAME_CACHE_SECONDS = 300.0
UNAVAILABLE_ACTION = "access_log.unavailable"
WATCH_FAILED_ACTION = "access_log.watch_failed"
_MAX_PROBLEMS = 100

_DESCRIPTIONS: dict[Source, str] = {
    "fanotify": "access log: fanotify (uid, pid, program)",
    "inotify": "access log: inotify (user unknown)",
}


@dataclass(frozen=True, slots=True)
class _Open:
    """An open as a listener queues it: no user name yet (a lookup may wait on NSS)."""

    time: datetime
    uid: int
    pid: int | None
    program: str
    path: str
    project: str
    zone: str


_STOP = None


class AccessRecorder:
    def __init__(self, services: Services, actor: Caller, *, capacity: int = QUEUE_CAPACITY,
                 setting: str | None = None) -> None:
        self.services = services
        self.actor = actor
        self.setting = setting or services.config.access_log_source
        if self.setting not in ACCESS_LOG_SOURCES:
            raise ValueError(f"access_log_source must be one of {', '.join(ACCESS_LOG_SOURCES)}")
        self.capacity = capacity
        #: The source in use once started; None if there is none.
        self.source: Source | None = None
        self._queue: queue.Queue[_Open | None] = queue.Queue(maxsize=capacity)
        # Drops, kernel overflows and problems are noted by the listener threads and taken by
        # the worker: this lock is held only for those few lines.
        self._noted = threading.Lock()
        self._drops = DropTally()
        #: First and last time the kernel's inotify queue overflowed since last taken.
        self._kernel_overflows: tuple[datetime, datetime] | None = None
        self._problems: list[tuple[str, dict[str, Any]]] = []
        self._aggregator = OpenAggregator(self._window())
        self._inotify: InotifyOpens | None = None
        self._worker: threading.Thread | None = None
        self._first_events: list[EventFields] = []
        self._unwritten: list[EventFields] = []
        self._write_failures = DropTally()
        self._names: dict[int, str] = {}
        self._names_since = 0.0
        self.logged_opens = 0
        self.dropped_opens = 0
        #: Rounds whose events could not be written (each logged; the opens become a gap).
        self.failed_writes = 0

    @property
    def wants_fanotify(self) -> bool:
        return self.setting in ("auto", "fanotify")

    @property
    def watched_directories(self) -> int:
        """Directories the inotify source watches (0 with fanotify: the gate marks its own)."""
        return 0 if self._inotify is None else self._inotify.watched_directories

    # --- what the listeners call (their threads: queue, never wait) ---------------------------

    def fanotify_open(self, opened: AllowedOpen) -> None:
        self._offer(_Open(self.services.clock.now(), opened.uid, opened.pid, opened.program,
                          opened.path, opened.zone.project, opened.zone.kind.value))

    def _inotify_open(self, path: str, zone: ZoneAccess) -> None:
        self._offer(_Open(self.services.clock.now(), UNKNOWN_UID, None, UNKNOWN, path,
                          zone.project, zone.kind.value))

    def _offer(self, opened: _Open) -> None:
        try:
            self._queue.put_nowait(opened)
        except queue.Full:
            with self._noted:
                self._drops.add(opened.project, opened.time)

    def _inotify_overflow(self) -> None:
        now = self.services.clock.now()
        with self._noted:
            seen = self._kernel_overflows
            self._kernel_overflows = (now, now) if seen is None else (seen[0], now)

    def _inotify_problem(self, kind: str, details: dict[str, Any]) -> None:
        with self._noted:
            if len(self._problems) < _MAX_PROBLEMS:
                self._problems.append((kind, dict(details)))

    # --- life cycle -----------------------------------------------------------------------------

    def start(self, *, gate_running: bool) -> None:
        """Pick the source (the running gate, or inotify), say which in ``vokter status``, and
        start the worker, whose first write marks the gap since the previous run."""
        error = self._choose_source(gate_running)
        if self.source is None:
            self.services.watchers.append(f"access log: unavailable ({error})")
            log.error("access_log_unavailable", setting=self.setting, error=error)
            self._first_events = [self._daemon_event(
                UNAVAILABLE_ACTION, "failed", details={"setting": self.setting, "error": error})]
        else:
            self.services.watchers.append(_DESCRIPTIONS[self.source])
            self._first_events = [
                *(self._gap_event(gap) for gap in self._restart_gaps()),
                self._daemon_event(START_ACTION, "ok", details={
                    "source": self.source, "queue_capacity": self.capacity,
                    "window_seconds": self._window().total_seconds()}),
            ]
        self._worker = threading.Thread(target=self._work, name="vokterd-access-log",
                                        daemon=True)
        self._worker.start()

    def stop(self) -> None:
        """Call after the listener has stopped: flush every window, then ``access_log.stop``."""
        if self._inotify is not None:
            self._inotify.stop()
        if self._worker is None:
            return
        try:
            self._queue.put(_STOP, timeout=30)
        except queue.Full:
            log.error("access_log_stop_not_queued")
        self._worker.join(timeout=60)
        if self._worker.is_alive():
            log.error("access_log_worker_stuck")
        self._worker = None

    def _choose_source(self, gate_running: bool) -> str:
        if self.setting != "inotify" and gate_running:
            self.source = "fanotify"
            return ""
        if self.setting == "fanotify":
            return "the fanotify gate is not running and access_log_source = \"fanotify\""
        inotify = InotifyOpens(self.services.gate_view, on_open=self._inotify_open,
                               on_overflow=self._inotify_overflow,
                               on_problem=self._inotify_problem)
        try:
            inotify.start()
        except OSError as error:
            return f"inotify: {error.strerror or error}"
        self._inotify, self.source = inotify, "inotify"
        return ""

    def _restart_gaps(self) -> list[Gap]:
        projects = {zone.project for zone in self.services.gate_view.current().zones.values()}
        now = self.services.clock.now()
        try:
            with self.services.store.read() as session:
                logged = session.exec(
                    select(AuditEvent.action, AuditEvent.time)
                    .where(col(AuditEvent.action).in_(LOG_ACTIONS))
                    .order_by(col(AuditEvent.seq).desc()).limit(1)).first()
                stopped = session.exec(
                    select(AuditEvent.time).where(AuditEvent.action == DAEMON_STOP_ACTION)
                    .order_by(col(AuditEvent.seq).desc()).limit(1)).first()
        except Exception as error:
            log.error("access_log_history_unread", error=type(error).__name__)
            return gaps_for_projects("restart", None, now, self.source, projects)
        last_logged = None if logged is None else (logged[0], logged[1])
        return restart_gaps(last_logged, stopped, now, self.source, projects)

    # --- the worker -----------------------------------------------------------------------------

    def _work(self) -> None:
        self._write(self._first_events)
        if self.source is None:
            return
        stopping = False
        while not stopping:
            try:
                stopping = self._take_round()
                self._write_round(stopping)
            except Exception:
                # The worker must outlive any one bad round: without it, opens only pile up.
                log.exception("access_log_round_failed")

    def _write_round(self, stopping: bool) -> None:
        now = self.services.clock.now()
        self._aggregator.window = self._window()
        records = self._aggregator.flush(None if stopping else now)
        events = [self._record_event(record, now) for record in records]
        events.extend(self._noted_events(now, stopping=stopping))
        if stopping:
            events.append(self._daemon_event(STOP_ACTION, "ok", details={
                "source": self.source, "opens": self.logged_opens + _opens(records),
                "dropped": self.dropped_opens}))
        if events:
            self._write(events, records)

    def _take_round(self) -> bool:
        """Move what is queued into the aggregator; True once the stop has been taken."""
        try:
            first = self._queue.get(timeout=TICK_SECONDS)
        except queue.Empty:
            return False
        taken = [first]
        while taken[-1] is not _STOP and len(taken) < ROUND_LIMIT:
            try:
                taken.append(self._queue.get_nowait())
            except queue.Empty:
                break
        for opened in taken:
            if opened is None:
                return True
            self._aggregator.add(self._seen(opened))
        return False

    def _seen(self, opened: _Open) -> OpenSeen:
        assert self.source is not None
        return OpenSeen(opened.time, opened.uid, self._user(opened.uid), opened.pid,
                        opened.program, opened.path, opened.project, opened.zone, self.source)

    def _user(self, uid: int) -> str:
        if uid == UNKNOWN_UID:
            return UNKNOWN
        moment = self.services.clock.monotonic()
        if moment - self._names_since >= NAME_CACHE_SECONDS:
            self._names.clear()
            self._names_since = moment
        name = self._names.get(uid)
        if name is None:
            name = self._names[uid] = name_of_uid(uid)
        return name

    def _noted_events(self, now: datetime, *, stopping: bool) -> list[EventFields]:
        """Gap markers for what the listeners noted (drops, kernel overflows) and for records
        that could not be written, and the listeners' problems.

        While writing fails, the counts stay in their tallies, which merge per project: a long
        database outage costs one marker per project and reason, not one per round."""
        if self._unwritten and not stopping:
            return []
        with self._noted:
            dropped = self._drops.total
            gaps = self._drops.take("overflow", self.source)
            overflows, self._kernel_overflows = self._kernel_overflows, None
            problems, self._problems = self._problems, []
        self.dropped_opens += dropped
        if overflows is not None:
            projects = {z.project for z in self.services.gate_view.current().zones.values()}
            gaps.extend(gaps_for_projects("kernel_overflow", *overflows, self.source, projects))
        gaps.extend(self._write_failures.take("write_failed", self.source))
        return [*(self._gap_event(gap) for gap in gaps),
                *(self._problem_event(kind, details, now) for kind, details in problems)]

    def _write(self, events: Sequence[EventFields],
               records: Sequence[AccessRecord] = ()) -> None:
        pending, self._unwritten = [*self._unwritten, *events], []
        try:
            with self.services.store.write() as session:
                append_events(session, pending, mac_key=self.services.audit_keys.mac_key,
                              algorithm=self.services.policies.current().audit.hash)
        except Exception as error:
            self.failed_writes += 1
            # The class only: a database error's text may quote the rows, paths and all.
            log.error("access_log_not_written", events=len(pending),
                      error=type(error).__name__)
            # Records become counted losses; markers and the rest are tried again next round.
            for record in records:
                self._write_failures.add(record.project, record.first, record.count,
                                         until=record.last)
            self._unwritten = [e for e in pending if e.action != OPEN_ACTION]
            return
        self.logged_opens += _opens(records)

    # --- events -----------------------------------------------------------------------------------

    def _record_event(self, record: AccessRecord, now: datetime) -> EventFields:
        return EventFields(time=now, actor_uid=record.uid, actor=record.user,
                           action=OPEN_ACTION, outcome="ok", project_id=record.project,
                           target=record.path, rule="A5", details=record.details())

    def _gap_event(self, gap: Gap) -> EventFields:
        return self._daemon_event(GAP_ACTION, "gap", project=gap.project, details=gap.details())

    def _problem_event(self, kind: str, details: dict[str, Any], now: datetime) -> EventFields:
        path = str(details.get("path", ""))
        zone = self.services.gate_view.current().zone_of(path) if path else None
        return EventFields(time=now, actor_uid=self.actor.uid, actor=self.actor.name,
                           action=WATCH_FAILED_ACTION, outcome="failed",
                           project_id=None if zone is None else zone.project, target=path,
                           rule="A5", details={"kind": kind, **details})

    def _daemon_event(self, action: str, outcome: str, *, project: str | None = None,
                      details: dict[str, Any]) -> EventFields:
        return EventFields(time=self.services.clock.now(), actor_uid=self.actor.uid,
                           actor=self.actor.name, action=action, outcome=outcome,
                           project_id=project, rule="A5",
                           details={"pid": self.actor.pid, **details})

    def _window(self) -> timedelta:
        audit = self.services.policies.current().audit
        return timedelta(seconds=audit.access_log_aggregate_seconds)


def _opens(records: Sequence[AccessRecord]) -> int:
    return sum(record.count for record in records)
