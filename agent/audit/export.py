"""``audit.export``: the trail, or the part an auditor may see, written for checking elsewhere.

The daemon runs as root, so it never opens a path a client names: the client opens the export
file and its manifest itself and passes the descriptors (``ctx.fds``); they are checked to be
regular files opened for writing. Root exports all or any project; a project's auditors export
that project (A5). Before any row is written, a checkpoint is made to cover the newest event,
and the export is recorded in the trail (fail closed: no audit event, no export). The rows are
the events up to that checkpoint that match the filters, streamed in chunks in constant memory
and hashed as they are written; the signed manifest (agent.audit.manifest) then pins the file's
size and SHA-256, the chain's ends and the covering checkpoint.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from typing import Any

from sqlalchemy import ColumnElement, func
from sqlmodel import Session, col, select

from agent.access.permissions import Action
from agent.api.descriptors import checked_file
from agent.api.dispatch import RequestContext
from agent.api.schemas import AuditExportArgs
from agent.audit.chain import format_time
from agent.audit.checkpoint import SignedCheckpoint
from agent.audit.export_rows import Row, line_writer
from agent.audit.manifest import (
    ChainEnd,
    ExportFilters,
    Manifest,
    export_mode,
    manifest_document,
    manifest_payload,
)
from agent.audit.rows import selected_rows
from agent.audit.sealer import seal
from agent.errors import AuditUnavailable, InvalidRequest, NotFound, PermissionDenied
from agent.projects import rules
from agent.projects.service import project_for
from agent.store.tables import AuditEvent, Project

ACTION = "audit.export"
#: Rows per database fetch, per write to the file and per progress frame.
CHUNK = 5000
_SEQ, _TIME, _PROJECT_SEQ, _PREV, _PROJECT_PREV, _HASH = 0, 1, 6, 12, 13, 14


def _authorise(session: Session, ctx: RequestContext, project: str | None) -> None:
    """Root: everything. A project's auditors: that project (A5). Nobody else."""
    if ctx.caller.uid != 0:
        if project is None:
            raise PermissionDenied(
                "only root exports the whole trail", rule="A5",
                hint="an auditor exports a project: vokter audit export --project P ...")
        project_for(session, ctx, project, Action.AUDIT_READ)
        return
    if project is None:
        return
    rules.check_project_id(project)
    # Root may export the events about a project that was never created (refused requests).
    known = session.get(Project, project) is not None or session.exec(
        select(AuditEvent.seq).where(col(AuditEvent.project_id) == project).limit(1)
    ).first() is not None
    if not known:
        raise NotFound(f"no project {project}, and no audit events about one",
                       hint="see 'vokter project list'")


def covering_checkpoint(ctx: RequestContext) -> SignedCheckpoint:
    """A checkpoint over the newest event: the sealer's own seal, now (it signs nothing it has
    not verified, so a damaged trail cannot be exported under a signature)."""
    result = seal(ctx.services)
    if result.damage is not None:
        raise AuditUnavailable(
            f"the trail is damaged, so no checkpoint can vouch for an export: "
            f"{result.damage.message}", rule="A5",
            hint="run 'vokter audit verify' to see the damage")
    if result.latest is None:
        raise AuditUnavailable("no checkpoint could be made to cover the export",
                               hint="see the daemon's log")
    return result.latest


def _conditions(filters: ExportFilters, through: int) -> list[ColumnElement[bool]]:
    conditions = [col(AuditEvent.seq) <= through]
    if filters.project is not None:
        conditions.append(col(AuditEvent.project_id) == filters.project)
    if filters.user is not None:
        conditions.append(col(AuditEvent.actor) == filters.user)
    if filters.action is not None:
        conditions.append(col(AuditEvent.action) == filters.action)
    if filters.since is not None:
        conditions.append(col(AuditEvent.time) >= filters.since)
    if filters.until is not None:
        conditions.append(col(AuditEvent.time) <= filters.until)
    return conditions


def _selected(session: Session, filters: ExportFilters, through: int) -> Iterator[Row]:
    """The rows to export, by the fast path: the database selects by number, project, user
    and action; the time range is applied here, to the canonical time (it sorts as text)."""
    where = ['"seq" <= :through']
    params: dict[str, Any] = {"through": through}
    for column, value in (("project_id", filters.project), ("actor", filters.user),
                          ("action", filters.action)):
        if value is not None:
            where.append(f'"{column}" = :{column}')
            params[column] = value
    rows = selected_rows(session, " AND ".join(where), params)
    if filters.since is None and filters.until is None:
        return rows
    since = None if filters.since is None else format_time(filters.since)
    until = None if filters.until is None else format_time(filters.until)
    return (row for row in rows
            if (since is None or row[_TIME] >= since) and (until is None or row[_TIME] <= until))


class _Output:
    """Buffered writes to a passed descriptor, hashed as written; never closes it (the socket
    server owns the descriptor)."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.digest = hashlib.sha256()
        self.size = 0
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)

    def write(self, text: str) -> None:
        data = text.encode("utf-8")
        self.digest.update(data)
        self.size += len(data)
        view = memoryview(data)
        while view:
            view = view[os.write(self.fd, view):]

    def sync(self) -> None:
        os.fsync(self.fd)


def _write_rows(
    ctx: RequestContext, output: _Output, rows: Iterator[Row], file_format: str, total: int
) -> tuple[int, Row | None, Row | None]:
    header, line = line_writer("csv" if file_format == "csv" else "jsonl")
    output.write(header)
    first: Row | None = None
    last: Row | None = None
    count = 0
    batch: list[str] = []
    ctx.progress(0, total)
    for row in rows:
        if first is None:
            first = row
        last = row
        batch.append(line(row))
        count += 1
        if len(batch) == CHUNK:
            output.write("".join(batch))
            batch.clear()
            ctx.progress(count, total)
    output.write("".join(batch))
    output.sync()
    ctx.progress(count, total)
    return count, first, last


def export_audit(ctx: RequestContext, args: AuditExportArgs) -> dict[str, Any]:
    data_fd, manifest_fd = ctx.fds
    data_info = checked_file(data_fd, "the export file", writing=True)
    manifest_info = checked_file(manifest_fd, "the manifest file", writing=True)
    if (data_info.st_dev, data_info.st_ino) == (manifest_info.st_dev, manifest_info.st_ino):
        raise InvalidRequest("the export file and its manifest are the same file")
    filters = ExportFilters(project=args.project, user=args.user, action=args.action,
                            since=args.since, until=args.until)
    mode = export_mode(filters)
    services = ctx.services
    with services.store.read() as session:
        _authorise(session, ctx, args.project)
    sealed = covering_checkpoint(ctx)
    through = sealed.checkpoint.trail.seq
    conditions = _conditions(filters, through)
    with services.store.write() as session:
        total = session.exec(select(func.count()).select_from(AuditEvent)
                             .where(*conditions)).one()
        ctx.audit(session, ACTION, project=args.project, target=args.file_name, details={
            "format": args.format, "mode": mode, "filters": filters.as_json(),
            "count": total, "through_seq": through,
        })
    output = _Output(data_fd)
    with services.store.read() as session:
        count, first, last = _write_rows(ctx, output, _selected(session, filters, through),
                                         args.format, total)
    keys = services.audit_keys
    manifest = Manifest(
        file_name=args.file_name, file_format=args.format, file_bytes=output.size,
        file_sha256=output.digest.hexdigest(), count=count, filters=filters, mode=mode,
        first=None if first is None else ChainEnd(
            seq=first[_SEQ], project_seq=first[_PROJECT_SEQ], prev_hash=first[_PREV],
            project_prev_hash=first[_PROJECT_PREV]),
        last=None if last is None else ChainEnd(
            seq=last[_SEQ], project_seq=last[_PROJECT_SEQ], hash=last[_HASH]),
        through_seq=through, checkpoint=sealed.document(),
        exported_at=services.clock.now(), exported_by_uid=ctx.caller.uid,
        exported_by=ctx.caller.name, key_id=keys.key_id,
    )
    payload = manifest_payload(manifest)
    document = _Output(manifest_fd)
    document.write(manifest_document(payload, keys.sign(payload.encode("ascii"))))
    document.sync()
    return {
        "count": count, "format": args.format, "mode": mode, "bytes": output.size,
        "sha256": manifest.file_sha256, "through_seq": through, "key_id": keys.key_id,
        "first_seq": None if first is None else first[_SEQ],
        "last_seq": None if last is None else last[_SEQ],
    }
