"""``storage.scan``: every file of a project's zones judged on demand (``vokter scan``), with
progress, and the places outside the zones searched for stray copies (S1)."""

from __future__ import annotations

import os
import time
from typing import Any

from agent.access.permissions import Action
from agent.access.plan import ZoneKind
from agent.api.dispatch import Caller, RequestContext
from agent.api.schemas import ProjectRef
from agent.projects.service import project_for
from agent.storage.copies import ZoneFileIndex, find_copies
from agent.storage.scanner import ScanReport, StorageRules


def _rules(ctx: RequestContext) -> StorageRules:
    """The running watcher's rules (one lock serialises every action), or, in a daemon built
    without a watcher, rules acting as the daemon."""
    watcher = ctx.services.storage
    if watcher is not None:
        return watcher.rules
    return StorageRules(ctx.services, Caller(uid=os.getuid(), gid=os.getgid(),
                                             pid=os.getpid(), name="vokterd"))


def storage_scan(ctx: RequestContext, args: ProjectRef) -> dict[str, Any]:
    with ctx.services.store.read() as session:
        project, _relation = project_for(session, ctx, args.project, Action.STORAGE_SCAN)
    rules = _rules(ctx)
    started = time.monotonic()
    zones = rules.judged_zones(project.id)
    report = rules.scan(zones, progress=ctx.progress)
    copies = _stray_copies(ctx, rules, project.id)
    result: dict[str, Any] = {"project": project.id, **report.as_dict(),
                              "copies": copies.findings,
                              "violations": report.violations + copies.violations,
                              "seconds": round(time.monotonic() - started, 3)}
    with ctx.services.store.write() as session:
        ctx.audit(session, "storage.scan", project=project.id,
                  details={k: v for k, v in result.items() if k != "violations"}
                  | {"violations": len(result["violations"])})
    return result


def _stray_copies(ctx: RequestContext, rules: StorageRules, project: str) -> ScanReport:
    """S1: the policy's places outside the zones searched for copies of this project's data
    zone files, by content; each copy found is a violation (alert: a copy is someone's file,
    and only a person can tell whether it may go)."""
    data = [z.path for z in rules.judged_zones(project) if z.kind is ZoneKind.DATA]
    index = ZoneFileIndex.build([(project, path) for path in data])
    found = ScanReport()
    if not len(index):
        return found
    places = ctx.services.policies.current().storage.copy_scan_paths
    every_zone = list(ctx.services.gate_view.current().zones)
    for finding in find_copies(index, places, skip=every_zone):
        found.findings += 1
        recorded = rules.record(finding)
        if recorded is not None:
            found.violations.append(recorded)
    return found
