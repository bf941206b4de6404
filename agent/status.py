"""``vokter status``: what an operator checks first when something seems wrong."""

from __future__ import annotations

import os
from typing import Any

from agent.api.dispatch import RequestContext
from agent.api.schemas import NoArgs
from agent.audit.checkpoint_ops import checkpoint_status
from agent.projects.service import visible_projects
from agent.store import redact_url


def daemon_status(ctx: RequestContext, _args: NoArgs) -> dict[str, Any]:
    services = ctx.services
    policy = services.policies.current()
    with services.store.read() as session:
        projects = len(visible_projects(session, ctx.caller.uid))
    uptime = services.clock.monotonic() - services.started_monotonic
    status: dict[str, Any] = {
        "version": services.version,
        "uptime_seconds": round(max(uptime, 0.0), 1),
        "store": services.store.backend,
        "policy": {"name": policy.name, "version": policy.version},
        "watchers": list(services.watchers),
        "projects": projects,
        "caller": {"uid": ctx.caller.uid, "user": ctx.caller.name},
        "audit": checkpoint_status(services),
    }
    if ctx.caller.uid == 0:
        status["pid"] = os.getpid()
        status["database"] = redact_url(services.store.url)
        status["schema_revision"] = services.schema_revision
        status["socket"] = str(services.config.socket_path)
        status["zones_dir"] = str(services.config.zones_dir)
    return status
