"""The table of operations the daemon answers: name -> (argument schema, handler)."""

from __future__ import annotations

from agent.api.dispatch import Operation
from agent.api.schemas import NoArgs, ProjectCreateArgs, ProjectRef
from agent.projects import service as projects
from agent.status import daemon_status

OPERATIONS: dict[str, Operation] = {
    "project.create": Operation(ProjectCreateArgs, projects.create_project),
    "project.show": Operation(ProjectRef, projects.show_project),
    "project.list": Operation(NoArgs, projects.list_projects),
    "status": Operation(NoArgs, daemon_status),
}
