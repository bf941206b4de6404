"""``vokter status``: what an operator checks first when something seems wrong."""

from __future__ import annotations

import os
from typing import Any

from agent.api.dispatch import RequestContext
from agent.api.schemas import NoArgs
from agent.audit.checkpoint_ops import checkpoint_status
from agent.projects.service import visible_projects
from agent.projects.zones import same_filesystem
from agent.store import Project, redact_url


def separation_warnings(projects: list[Project], policy_separation: str) -> list[str]:
    """S5: a key zone on the data zone's file system, when the policy wants them apart."""
    if policy_separation != "separate_filesystem":
        return []
    warnings = []
    for project in projects:
        try:
            same = same_filesystem(project.data_root, project.key_root)
        except OSError:
            warnings.append(f"S5: {project.id}: a zone is missing ({project.data_root} or "
                            f"{project.key_root}); run 'vokter access check {project.id}'")
            continue
        if same:
            warnings.append(f"S5: {project.id}: the key zone {project.key_root} is on the same "
                            "file system as the data zone; the policy wants the linkage key "
                            "on a separate file system")
    return warnings


def daemon_status(ctx: RequestContext, _args: NoArgs) -> dict[str, Any]:
    services = ctx.services
    policy = services.policies.current()
    with services.store.read() as session:
        seen = visible_projects(session, ctx.caller.uid)
    uptime = services.clock.monotonic() - services.started_monotonic
    status: dict[str, Any] = {
        "version": services.version,
        "uptime_seconds": round(max(uptime, 0.0), 1),
        "store": services.store.backend,
        "policy": {"name": policy.name, "version": policy.version},
        "watchers": list(services.watchers),
        "projects": len(seen),
        "warnings": separation_warnings(seen, policy.storage.key_separation),
        "caller": {"uid": ctx.caller.uid, "user": ctx.caller.name},
        "audit": checkpoint_status(services),
    }
    if services.storage is not None:
        status["storage"] = services.storage.status()
    if ctx.caller.uid == 0:
        status["pid"] = os.getpid()
        status["database"] = redact_url(services.store.url)
        status["schema_revision"] = services.schema_revision
        status["socket"] = str(services.config.socket_path)
        status["zones_dir"] = str(services.config.zones_dir)
    return status
