"""When the sweep runs: APScheduler (3.x), its jobs kept in Vokter's own database (L1-L5).

Three kinds of job, all running :func:`agent.lifecycle.sweep.sweep`:
- the daily safety net, at the policy's ``lifecycle.sweep_hour`` (UTC);
- a catch-up at every start: what fell due while the daemon was down is done at once;
- one per project at its next dated step (its end, the end of its grace or retention), so a
  step happens within minutes of its day and not only at the daily hour.
Jobs survive restarts in the job store; one missed while the daemon was down runs at the next
start, however late (``misfire_grace_time`` None), once (``coalesce``). Each daemon keeps its
jobs in a table of its own (named after its host and state directory): daemons sharing one
database must not run each other's jobs; a transition itself is safe against a second daemon
(the project row is locked, and a step already taken is not taken again).

APScheduler stores a job's function by its import path, so the job functions are module-level
and find the running scheduler through ``_RUNNING``: one per daemon process.
"""

from __future__ import annotations

import hashlib
import socket
from datetime import UTC, datetime, time, timedelta

import structlog
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore  # type: ignore[import-untyped]
from apscheduler.schedulers.background import BackgroundScheduler  # type: ignore[import-untyped]
from apscheduler.triggers.cron import CronTrigger  # type: ignore[import-untyped]

from agent.api.dispatch import Caller
from agent.lifecycle.decision import decide
from agent.lifecycle.facts_io import project_facts
from agent.lifecycle.sweep import Swept, sweep
from agent.services import Services
from agent.store.tables import Project

log = structlog.get_logger("vokter.lifecycle")

#: A project's own job runs this long after midnight (UTC) of its day.
_AFTER_MIDNIGHT = time(0, 5)

_RUNNING: LifecycleScheduler | None = None


def scheduled_sweep(project: str | None = None) -> None:
    """The job function (by import path in the job store)."""
    running = _RUNNING
    if running is not None:
        running.run(project)


def job_table(services: Services) -> str:
    """This daemon's job table: named after the host and the state directory."""
    where = f"{socket.gethostname()}:{services.config.state_dir}"
    return "lifecycle_jobs_" + hashlib.sha256(where.encode()).hexdigest()[:12]


class LifecycleScheduler:
    def __init__(self, services: Services, actor: Caller) -> None:
        self.services = services
        self.actor = actor
        self._scheduler = BackgroundScheduler(
            timezone="UTC",
            jobstores={"default": SQLAlchemyJobStore(engine=services.store.engine,
                                                     tablename=job_table(services))},
            job_defaults={"coalesce": True, "misfire_grace_time": None, "max_instances": 1},
        )

    def start(self) -> None:
        global _RUNNING
        _RUNNING = self
        hour = self.services.policies.current().lifecycle.sweep_hour
        self._scheduler.add_job(scheduled_sweep, CronTrigger(hour=hour, minute=0, timezone=UTC),
                                id="lifecycle-sweep", replace_existing=True)
        # The catch-up runs now in real time, whatever date the daemon's clock says.
        now = datetime.now(UTC)  # wall-clock: APScheduler's triggers run on real time
        self._scheduler.add_job(scheduled_sweep, "date", run_date=now,
                                id="lifecycle-catch-up", replace_existing=True)
        self._scheduler.start()
        self.services.watchers.append(f"lifecycle: daily sweep at {hour:02d}:00 UTC")

    def stop(self) -> None:
        global _RUNNING
        self._scheduler.shutdown(wait=True)
        _RUNNING = None

    def run(self, project: str | None = None, *, actor: Caller | None = None) -> list[Swept]:
        """Sweep now (as ``actor``: a person's ``vokter lifecycle run``, else the daemon),
        then set each project's own job at its next dated step."""
        results = sweep(self.services, actor or self.actor, only=project)
        for result in results:
            self.reschedule(result.project)
        return results

    def reschedule(self, project_id: str) -> None:
        """The project's own job at its next dated step, replacing the one it had; after a
        sweep, and whenever the project's dates change."""
        with self.services.store.read() as session:
            row = session.get(Project, project_id)
            if row is None:
                return
            facts = project_facts(session, row)
        today = self.services.clock.now().date()
        plan = decide(facts, self.services.policies.current(), today)
        dated = [step.on for step in plan.steps if step.on is not None and step.on > today]
        job_id = f"lifecycle:{project_id}"
        if not dated:
            if self._scheduler.get_job(job_id) is not None:
                self._scheduler.remove_job(job_id)
            return
        when = datetime.combine(min(dated), _AFTER_MIDNIGHT, tzinfo=UTC)
        # The daemon's clock may run apart from the real one (a drill's clock file): the job
        # waits the same number of days from now in real time.
        delay = when - self.services.clock.now()
        real_now = datetime.now(UTC)  # wall-clock: APScheduler's triggers run on real time
        run_at = real_now + max(delay, timedelta(0))
        self._scheduler.add_job(scheduled_sweep, "date", run_date=run_at, args=[project_id],
                                id=job_id, replace_existing=True)
        log.debug("lifecycle_scheduled", project=project_id, at=when.isoformat())
