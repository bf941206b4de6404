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

import contextlib
import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import structlog
from sqlmodel import col, select

from agent.access.processes import find_holders
from agent.access.sync import active_members
from agent.api.dispatch import Caller, RequestContext
from agent.audit.redact import redact_identity_numbers
from agent.errors import KeyDestroyed, Refused
from agent.lifecycle import removal_journal
from agent.lifecycle.anonymise_journal import NAME as ANONYMISE_JOURNAL
from agent.lifecycle.anonymise_run import (
    ANONYMISED,
    FAILED,
    KEPT,
    TableOutcome,
    anonymise_data_zone,
    archive_note,
)
from agent.lifecycle.certificate import DisposalRecord
from agent.lifecycle.certificate_ops import certificate_path, issue_certificate
from agent.lifecycle.decision import disposal_method
from agent.lifecycle.disposal_guard import (
    HoldWatch,
    claim,
    daemon_id,
    hold_flag_clear,
    mount_points,
)
from agent.lifecycle.facts_io import project_facts
from agent.lifecycle.model import State
from agent.lifecycle.removal import Item, Removal
from agent.lifecycle.removal_journal import PLAN
from agent.lifecycle.states import Event
from agent.lifecycle.transitions import apply_event, held
from agent.services import Services
from agent.store.tables import AuditEvent, Project, ProjectKeyset

log = structlog.get_logger("vokter.lifecycle")



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
    method: str = ""
    tables: dict[str, int] | None = None

    def view(self) -> dict[str, Any]:
        data = asdict(self)
        data["errors"] = [redact_identity_numbers(error) for error in self.errors[:20]]
        return data


def journal_dir(services: Services, project_id: str) -> Path:
    """Where the run's journal lives: root's state directory, readable by root alone."""
    folder = services.config.state_dir / "disposal"
    folder.mkdir(mode=0o700, exist_ok=True)
    return folder / project_id


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
            people = {member.uid for member in active_members(session, project_id)}
            people.add(row.leader_uid)
            if held(session, project_id):
                return Disposed(project_id, "stopped")
        hold_flag_clear(project_id)
        begun = _begun(services, project_id)
        policy = services.policies.current()
        method = str(begun.get("method") or disposal_method(facts.approvals, policy))
        journal = journal_dir(services, project_id)
        refusal = _not_resumable_here(services, project_id, begun, journal)
        if refusal is not None:
            return _not_finished(ctx, Disposed(project_id, refusal, method=method), [])
        _shred(ctx, project_id)
        watch = HoldWatch(services, project_id)
        removal = Removal(journal, others if method == "anonymise" else [data, *others])
        files = [item for item in removal.plan() if item.kind == "file"]
        report = removal.run(should_stop=watch)
        tables: list[TableOutcome] = []
        stopped = report.stopped
        blocking = _data_zone_blocked(data, people) if method == "anonymise" else []
        if method == "anonymise" and not stopped and not blocking:
            tables, stopped = anonymise_data_zone(data, journal, policy=policy,
                                                  today=services.clock.now().date(),
                                                  should_stop=watch)
        left = [] if stopped else removal.verify()
        failed = [f"{table.path}: failed" for table in tables if table.outcome == FAILED]
        failed += blocking + ([] if stopped else _changed_since_judged(data, tables))
        outcome = "stopped" if stopped else (
            "incomplete" if left or report.errors or failed else "done")
        size = sum(item.size for item in files) + sum(table.size_before for table in tables)
        result = Disposed(project_id, outcome, len(files) + len(tables), size, report.removed,
                          report.gone, report.errors + tuple(failed), method=method,
                          tables=_table_counts(tables))
        if outcome != "done":
            return _not_finished(ctx, result, left)
        with services.store.write() as session:
            ctx.audit(session, "lifecycle.disposal_run", project=project_id, target=project_id,
                      rule="L2", details={**result.view(), "left": 0})
        _check_unreadable(services, project_id)
        if not certificate_path(services, project_id).exists():
            # Before the last step, outside any transaction (sealing a checkpoint writes):
            # a crash between the two is resumed, and the certificate is not issued twice.
            issue_certificate(services, _record(services, project_id, method, files, tables))
        apply_event(services, project_id, _FINAL[method], audit=ctx.audit,
                    expect=State.DISPOSING,
                    details={"files": result.files, "bytes": size, "method": method})
        discard_journals(services, project_id)
        log.info("project_disposed", project=project_id, method=method, files=result.files)
        return result


def _begun(services: Services, project_id: str) -> dict[str, Any]:
    """What was fixed when disposal began (the ``lifecycle.dispose`` event): the method, and
    the daemon whose journals the run keeps."""
    with services.store.read() as session:
        began = session.exec(
            select(AuditEvent).where(AuditEvent.project_id == project_id,
                                     AuditEvent.action == "lifecycle.dispose")
            .order_by(col(AuditEvent.seq).desc())).first()
    if began is None:
        return {}
    details: dict[str, Any] = json.loads(began.details)
    if details.get("method") not in _FINAL:
        details.pop("method", None)
    return details


def _not_resumable_here(services: Services, project_id: str, begun: dict[str, Any],
                        journal: Path) -> str | None:
    """A run is resumed only where its journal is: by the daemon that began it, and only if
    the journal of an earlier run is still there (else its certificate would list only what
    was left)."""
    by = begun.get("daemon")
    if by is not None and by != daemon_id(services):
        return f"begun by {by}"
    with services.store.read() as session:
        earlier = session.exec(
            select(AuditEvent.seq).where(AuditEvent.project_id == project_id,
                                         AuditEvent.action == "lifecycle.disposal_run")).first()
    if earlier is not None and not (journal / PLAN).exists():
        return "journal lost"
    return None


def _not_finished(ctx: RequestContext, result: Disposed, left: list[str]) -> Disposed:
    """Audited, logged, and left disposing for the next sweep (or for a person)."""
    with ctx.services.store.write() as session:
        ctx.audit(session, "lifecycle.disposal_run", project=result.project,
                  target=result.project, outcome="failed",
                  rule="L5" if result.outcome == "stopped" else "L2",
                  details={**result.view(), "left": len(left),
                           "left_first": [redact_identity_numbers(path) for path in left[:20]]})
    log.warning("disposal_not_finished", project=result.project, outcome=result.outcome,
                errors=len(result.errors), left=len(left))
    return result


def _data_zone_blocked(data: Path, people: set[int]) -> list[str]:
    """What keeps the data zone from being judged now: a file system mounted in it, or a
    process of the project's people holding its files (a writer from before the end could
    change a table after it was judged)."""
    blocking = [f"{path}: a file system is mounted here; unmount it"
                for path in mount_points(data)]
    for uid in sorted(people):
        for hold in find_holders(uid, [str(data)]):
            blocking.append(f"process {hold.pid} of {hold.user} holds files in the data zone; "
                            "end it")
    return blocking


def _changed_since_judged(data: Path, tables: list[TableOutcome]) -> list[str]:
    """Every table kept or anonymised is hashed again: it must be what was judged."""
    changed = []
    for table in tables:
        if table.outcome in (KEPT, ANONYMISED) and table.sha256_after is not None:
            try:
                now = hashlib.sha256((data / table.path).read_bytes()).hexdigest()
            except OSError:
                now = None
            if now != table.sha256_after:
                changed.append(f"{table.path}: changed after it was judged")
    return changed


def discard_journals(services: Services, project_id: str) -> None:
    """The journals name every file the project had; once the certificate states what is
    needed (or the project is disposed of and a crash left them), they go."""
    journal = journal_dir(services, project_id)
    try:
        folder = os.open(journal, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        return
    try:
        removal_journal.discard(folder)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(ANONYMISE_JOURNAL, dir_fd=folder)
    finally:
        os.close(folder)


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
        decision=(*decision, (final.value, _FINAL_RULE[method])),
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


_STEPS = ("lifecycle.end", "lifecycle.extend", "lifecycle.retain", "lifecycle.dispose")
_FINAL_RULE = {"delete": "L2", "anonymise": "L6", "archive": "L9"}


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
