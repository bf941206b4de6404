"""The disposal run by deletion (L2, L5): crypto-shred the keyset, then remove every file.

A project reaches this in the disposing state (:mod:`agent.lifecycle.states`); the run takes
it to deleted. The order is the issue's: the project's keyset is destroyed first, so every
encrypted copy of its data, wherever it is, is unreadable from that moment; then every file of
every zone is removed (:class:`agent.lifecycle.removal.Removal`: descriptors, never a symlink
followed, journalled and resumable); then the zones are checked empty and the keyset checked
gone; only then does the project become deleted. A run killed at any point is resumed by the
next sweep from its journal; a legal hold placed mid-run stops it before the next file (L5).
The journal, with each file's path, size and SHA-256 taken before removal, stays in the state
directory for the certificate.

Exactly one daemon runs a project's disposal: on PostgreSQL an advisory lock held on a
connection of its own for the whole run (released by the server if the daemon dies), on SQLite
(one daemon per database) a lock in the process.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import structlog
from sqlalchemy import text

from agent.api.dispatch import Caller, RequestContext
from agent.errors import KeyDestroyed, Refused
from agent.lifecycle.decision import disposal_method
from agent.lifecycle.facts_io import project_facts
from agent.lifecycle.model import State
from agent.lifecycle.removal import Removal
from agent.lifecycle.states import Event
from agent.lifecycle.transitions import apply_event, held
from agent.services import Services
from agent.store.tables import Project

log = structlog.get_logger("vokter.lifecycle")

#: How often, at most, a running removal asks the store whether a hold was placed.
HOLD_CHECK_SECONDS = 0.5

_LOCAL_CLAIMS: set[str] = set()
_LOCAL_GUARD = threading.Lock()


@dataclass(frozen=True, slots=True)
class Disposed:
    project: str
    #: done | stopped (a hold) | incomplete (files left, errors) | busy (another daemon)
    outcome: str
    files: int = 0
    bytes: int = 0
    removed: int = 0
    gone: int = 0
    errors: tuple[str, ...] = ()

    def view(self) -> dict[str, Any]:
        data = asdict(self)
        data["errors"] = list(self.errors[:20])
        return data


def journal_dir(services: Services, project_id: str) -> Path:
    """Where the run's journal lives: root's state directory, readable by root alone."""
    folder = services.config.state_dir / "disposal"
    folder.mkdir(mode=0o700, exist_ok=True)
    return folder / project_id


@contextmanager
def claim(services: Services, project_id: str) -> Iterator[bool]:
    """Whether this daemon may run the project's disposal now; held for the whole run."""
    if services.store.backend == "postgresql":
        key = int.from_bytes(hashlib.sha256(f"vokter-disposal:{project_id}".encode()).digest()[:8],
                             "big", signed=True)
        with services.store.engine.connect() as connection:
            got = bool(connection.execute(text("SELECT pg_try_advisory_lock(:key)"),
                                          {"key": key}).scalar())
            try:
                yield got
            finally:
                if got:
                    connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": key})
                connection.commit()
        return
    with _LOCAL_GUARD:
        got = project_id not in _LOCAL_CLAIMS
        _LOCAL_CLAIMS.add(project_id)
    try:
        yield got
    finally:
        if got:
            with _LOCAL_GUARD:
                _LOCAL_CLAIMS.discard(project_id)


class _HoldWatch:
    """``should_stop`` for the removal: asks the store at most every half second, since it is
    called before every file, from the removal's threads."""

    def __init__(self, services: Services, project_id: str) -> None:
        self.services = services
        self.project_id = project_id
        self._checked = 0.0
        self._held = False
        self._lock = threading.Lock()

    def __call__(self) -> bool:
        with self._lock:
            now = time.monotonic()
            if not self._held and now - self._checked >= HOLD_CHECK_SECONDS:
                self._checked = now
                with self.services.store.read() as session:
                    self._held = held(session, self.project_id)
            return self._held


def deletes(services: Services, project_id: str) -> bool:
    """Whether the project's disposal is a deletion (the method this run carries out)."""
    with services.store.read() as session:
        row = session.get(Project, project_id)
        if row is None:
            return False
        facts = project_facts(session, row)
    return disposal_method(facts.approvals, services.policies.current()) == "delete"


def dispose_by_deletion(services: Services, actor: Caller, project_id: str) -> Disposed:
    """Carry the disposing project's deletion as far as it can go now; run again to resume."""
    ctx = RequestContext(actor, services)
    with claim(services, project_id) as mine:
        if not mine:
            return Disposed(project_id, "busy")
        with services.store.read() as session:
            row = session.get(Project, project_id)
            if row is None or row.state != State.DISPOSING.value:
                return Disposed(project_id, "not disposing")
            zones = [Path(row.data_root), Path(row.key_root), Path(row.export_root),
                     Path(row.quarantine_root)]
            if held(session, project_id):
                return Disposed(project_id, "stopped")
        _shred(ctx, project_id)
        removal = Removal(journal_dir(services, project_id), zones)
        planned = removal.plan()
        files = [item for item in planned if item.kind == "file"]
        size = sum(item.size for item in files)
        report = removal.run(should_stop=_HoldWatch(services, project_id))
        outcome = "stopped" if report.stopped else "done"
        left = removal.verify() if not report.stopped else []
        if not report.stopped and (left or report.errors):
            outcome = "incomplete"
        result = Disposed(project_id, outcome, len(files), size, report.removed, report.gone,
                          report.errors)
        with services.store.write() as session:
            ctx.audit(session, "lifecycle.disposal_run", project=project_id, target=project_id,
                      rule="L5" if report.stopped else "L2",
                      outcome="ok" if outcome == "done" else "failed",
                      details={**result.view(), "left": len(left),
                               "journal": str(journal_dir(services, project_id))})
        if outcome != "done":
            log.warning("disposal_not_finished", project=project_id, outcome=outcome,
                        errors=len(report.errors), left=len(left))
            return result
        _check_unreadable(services, project_id)
        apply_event(services, project_id, Event.DELETED, audit=ctx.audit,
                    expect=State.DISPOSING,
                    details={"files": len(files), "bytes": size, "method": "delete"})
        log.info("project_deleted", project=project_id, files=len(files), bytes=size)
        return result


def _shred(ctx: RequestContext, project_id: str) -> None:
    """The keyset first: from here on every encrypted copy anywhere is unreadable (S3)."""
    key_store = ctx.services.key_store
    with ctx.services.store.write() as session:
        if held(session, project_id):
            raise Refused(f"a legal hold stands on {project_id}; its key is kept", rule="L5")
        try:
            result = key_store.shred(session, project_id, ctx.services.clock.now(), "vokterd")
        except Refused:
            return  # destroyed already, by an earlier (interrupted) run or by hand
        ctx.audit(session, "project.key_shredded", project=project_id, target=project_id,
                  rule="L2", details=result)
    key_store.purge()


def _check_unreadable(services: Services, project_id: str) -> None:
    """The verification the certificate will state: the keyset no longer opens."""
    try:
        services.key_store.keyset(project_id)
    except KeyDestroyed:
        return
    raise Refused(f"the keyset of {project_id} still opens after shredding; not deleted",
                  rule="L2")
