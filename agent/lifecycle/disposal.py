"""The disposal run (L2, L5, L6, L9): crypto-shred the keyset, then remove or anonymise.

A project reaches this in the disposing state (:mod:`agent.lifecycle.states`); the run takes
it to deleted, anonymised or archived, as :func:`agent.lifecycle.decision.disposal_method`
says. The order is the issue's: the project's keyset is destroyed first, so every
encrypted copy of its data, wherever it is, is unreadable from that moment; then every file of
every zone is removed (:class:`agent.lifecycle.removal.Removal`: descriptors, never a symlink
followed, journalled and resumable); then the zones are checked empty and the keyset checked
gone; only then does the project become deleted. A run killed at any point is resumed by the
next sweep from its journal; a legal hold placed mid-run stops it before the next file (L5).
The journal, with each file's path, size and SHA-256 taken before removal, is kept in the
state directory until the signed certificate of disposal states it, then deleted.

Exactly one daemon runs a project's disposal: on PostgreSQL an advisory lock held on a
connection of its own for the whole run (released by the server if the daemon dies), on SQLite
(one daemon per database) a lock in the process.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import structlog
from sqlalchemy import text
from sqlmodel import col, select

from agent.api.dispatch import Caller, RequestContext
from agent.errors import KeyDestroyed, Refused
from agent.lifecycle.anonymise_journal import NAME as ANONYMISE_JOURNAL
from agent.lifecycle.anonymise_run import (
    FAILED,
    TableOutcome,
    anonymise_data_zone,
    archive_note,
)
from agent.lifecycle.certificate import DisposalRecord
from agent.lifecycle.certificate_ops import certificate_path, issue_certificate
from agent.lifecycle.decision import disposal_method
from agent.lifecycle.facts_io import project_facts
from agent.lifecycle.model import State
from agent.lifecycle.removal import Item, Removal
from agent.lifecycle.states import Event
from agent.lifecycle.transitions import apply_event, held
from agent.services import Services
from agent.store.tables import AuditEvent, Project, ProjectKeyset

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


def dispose(services: Services, actor: Caller, project_id: str) -> Disposed:
    """Carry the disposing project's disposal as far as it can go now; run again to resume.

    Every method shreds the keyset first. Deletion and archiving (the transfer is recorded by
    the transfer agreement, L9; the local copy goes) remove every zone; anonymisation removes
    the key, export and quarantine zones and anonymises or deletes each file of the data zone
    (:func:`agent.lifecycle.anonymise_run.anonymise_data_zone`, L6, L7)."""
    ctx = RequestContext(actor, services)
    with claim(services, project_id) as mine:
        if not mine:
            return Disposed(project_id, "busy")
        with services.store.read() as session:
            row = session.get(Project, project_id)
            if row is None or row.state != State.DISPOSING.value:
                return Disposed(project_id, "not disposing")
            facts = project_facts(session, row)
            data = Path(row.data_root)
            others = [Path(row.key_root), Path(row.export_root), Path(row.quarantine_root)]
            if held(session, project_id):
                return Disposed(project_id, "stopped")
        policy = services.policies.current()
        method = _method_begun(services, project_id) or disposal_method(facts.approvals, policy)
        _shred(ctx, project_id)
        watch = _HoldWatch(services, project_id)
        journal = journal_dir(services, project_id)
        removal = Removal(journal, others if method == "anonymise" else [data, *others])
        files = [item for item in removal.plan() if item.kind == "file"]
        report = removal.run(should_stop=watch)
        tables: list[TableOutcome] = []
        stopped = report.stopped
        mounted = _mount_points(data) if method == "anonymise" else []
        if method == "anonymise" and not stopped and not mounted:
            tables, stopped = anonymise_data_zone(data, journal, policy=policy,
                                                  today=services.clock.now().date(),
                                                  should_stop=watch)
        left = [] if stopped else removal.verify()
        failed = [table.path for table in tables if table.outcome == FAILED] + [
            f"{path}: a file system is mounted here; unmount it" for path in mounted]
        outcome = "stopped" if stopped else (
            "incomplete" if left or report.errors or failed else "done")
        size = sum(item.size for item in files) + sum(table.size_before for table in tables)
        result = Disposed(project_id, outcome, len(files) + len(tables), size, report.removed,
                          report.gone, report.errors + tuple(f"{path}: failed" for path in failed))
        with services.store.write() as session:
            ctx.audit(session, "lifecycle.disposal_run", project=project_id, target=project_id,
                      rule="L5" if stopped else "L2",
                      outcome="ok" if outcome == "done" else "failed",
                      details={**result.view(), "method": method, "left": len(left),
                               "tables": _table_counts(tables)})
        if outcome != "done":
            log.warning("disposal_not_finished", project=project_id, outcome=outcome,
                        errors=len(result.errors), left=len(left))
            return result
        _check_unreadable(services, project_id)
        if not certificate_path(services, project_id).exists():
            # Before the last step, outside any transaction (sealing a checkpoint writes):
            # a crash between the two is resumed, and the certificate is not issued twice.
            issue_certificate(services, _record(services, project_id, method, files, tables))
        apply_event(services, project_id, _FINAL[method], audit=ctx.audit,
                    expect=State.DISPOSING,
                    details={"files": result.files, "bytes": size, "method": method})
        # The journals name every file the project had; the certificate says what is needed.
        removal.discard_journal()
        (journal / ANONYMISE_JOURNAL).unlink(missing_ok=True)
        log.info("project_disposed", project=project_id, method=method, files=result.files)
        return result


def _mount_points(zone: Path) -> list[str]:
    """Folders of the data zone on another file system: the anonymisation does not enter
    them, so their files would be neither judged nor deleted; the run waits until they are
    unmounted. Symlinks are not followed."""
    try:
        device = os.lstat(zone).st_dev
    except FileNotFoundError:
        return []
    found = []
    for folder, names, _files in os.walk(zone):
        for name in list(names):
            path = os.path.join(folder, name)
            if os.lstat(path).st_dev != device:
                found.append(os.path.relpath(path, zone))
                names.remove(name)
    return found


def _method_begun(services: Services, project_id: str) -> str | None:
    """The method fixed when disposal began (the ``lifecycle.dispose`` event says it)."""
    with services.store.read() as session:
        began = session.exec(
            select(AuditEvent).where(AuditEvent.project_id == project_id,
                                     AuditEvent.action == "lifecycle.dispose")
            .order_by(col(AuditEvent.seq).desc())).first()
    if began is None:
        return None
    method = json.loads(began.details).get("method")
    return method if method in _FINAL else None


_FINAL = {"delete": Event.DELETED, "anonymise": Event.ANONYMISED, "archive": Event.ARCHIVED}


def _record(services: Services, project_id: str, method: str, files: list[Item],
            tables: list[TableOutcome]) -> DisposalRecord:
    """Everything the certificate states, read back from the store: the steps taken are the
    trail's own lifecycle events, the keyset's end its tombstone."""
    policy = services.policies.current()
    with services.store.read() as session:
        row = session.get(Project, project_id)
        assert row is not None
        facts = project_facts(session, row)
        steps = session.exec(
            select(AuditEvent).where(AuditEvent.project_id == project_id,
                                     col(AuditEvent.action).in_(_STEPS))
            .order_by(col(AuditEvent.seq))).all()
        keyset = session.get(ProjectKeyset, project_id)
    started = next((step.time for step in steps if step.action == "lifecycle.dispose"),
                   services.clock.now())
    decision = tuple((step.action.removeprefix("lifecycle."), step.rule or "") for step in steps)
    final = _FINAL[method]
    now = services.clock.now()
    return DisposalRecord(
        project=project_id, title=row.title, leader=row.leader, end_date=row.end_date,
        policy_name=policy.name, policy_version=policy.version, approvals=facts.approvals,
        holds=facts.holds, holds_checked_at=now,
        decision=(*decision, (final.value, "L6" if method == "anonymise" else "L2")),
        method=method,
        keyset={} if keyset is None else {
            "destroyed_at": None if keyset.destroyed_at is None
            else keyset.destroyed_at.isoformat(),
            "destroyed_by": keyset.destroyed_by, "master_key_id": keyset.master_key_id},
        files=tuple(files),
        tables=tuple(table.to_json() for table in tables),
        verification={"zones_empty": True, "left": [], "key_opens": False,
                      "data_zone": "only the tables kept or anonymised" if tables else "empty",
                      **({"archive": archive_note(facts.approvals)} if method == "archive"
                         else {})},
        started_at=started, finished_at=now,
    )


_STEPS = ("lifecycle.end", "lifecycle.retain", "lifecycle.dispose")


def _table_counts(tables: list[TableOutcome]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for table in tables:
        counts[table.outcome] = counts.get(table.outcome, 0) + 1
    return counts


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
