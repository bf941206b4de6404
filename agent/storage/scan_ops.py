"""``storage.scan``: every file of a project's zones judged on demand (``vokter scan``), with
progress, and the places outside the zones searched for stray copies (S1)."""

from __future__ import annotations

import os
import time
from typing import Any

from agent.access.permissions import Action
from agent.api.dispatch import Caller, RequestContext
from agent.api.schemas import ProjectRef
from agent.projects.service import project_for
from agent.storage.scanner import StorageRules


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
    report = rules.scan(rules.judged_zones(project.id), progress=ctx.progress)
    result: dict[str, Any] = {"project": project.id, **report.as_dict(),
                              "seconds": round(time.monotonic() - started, 3)}
    with ctx.services.store.write() as session:
        ctx.audit(session, "storage.scan", project=project.id,
                  details={k: v for k, v in result.items() if k != "violations"}
                  | {"violations": len(report.violations)})
    return result
