"""From the stored access list to the plain values the pure core works on, and back to the gate.

The database is the source of truth. After every committed change the daemon rebuilds the gate's
view from it (a few rows per project, whatever the number of files) and publishes it; the ACLs
follow. Reading everything afresh, rather than patching the old view, means a view can never
drift from what the store says.
"""

from __future__ import annotations

from sqlmodel import Session, col, select

from agent.access.plan import AccessPlan, ProjectZones, build_gate_view, plan_access
from agent.access.rules import Grant
from agent.services import Services
from agent.store.tables import Member, Project


def project_zones(project: Project, *, leader_reads_after_end: bool = True) -> ProjectZones:
    return ProjectZones(
        project=project.id,
        leader_uid=project.leader_uid,
        data=project.data_root,
        key=project.key_root,
        export=project.export_root,
        quarantine=project.quarantine_root,
        ended=project.state != "active",
        leader_reads_after_end=leader_reads_after_end,
    )


def active_members(session: Session, project_id: str) -> list[Member]:
    return list(
        session.exec(
            select(Member)
            .where(Member.project_id == project_id, col(Member.revoked_at).is_(None))
            .order_by(col(Member.id))
        ).all()
    )


def as_grant(member: Member) -> Grant:
    return Grant(user=member.user, uid=member.uid, role=member.role, expires_at=member.expires_at)


def active_grants(session: Session, project_id: str) -> list[Grant]:
    """Granted roles (the leader's row is not a grant: ``Project.leader_uid`` carries it)."""
    return [as_grant(m) for m in active_members(session, project_id) if m.role != "leader"]


def project_plan(session: Session, project: Project, *,
                 leader_reads_after_end: bool = True) -> AccessPlan:
    zones = project_zones(project, leader_reads_after_end=leader_reads_after_end)
    return plan_access(zones, active_grants(session, project.id))


def all_plans(session: Session, *, leader_reads_after_end: bool = True) -> list[AccessPlan]:
    projects = session.exec(select(Project).order_by(col(Project.id))).all()
    return [project_plan(session, project, leader_reads_after_end=leader_reads_after_end)
            for project in projects]


def leader_reads_after_end(services: Services) -> bool:
    """The policy's word on the ended project's leader (L8), for every plan alike."""
    return services.policies.current().access.ended_leader_read


def publish_gate_view(services: Services) -> None:
    """Rebuild the gate's view from the store; returns once the gate obeys it."""
    with services.store.read() as session:
        plans = all_plans(session, leader_reads_after_end=leader_reads_after_end(services))
    services.gate_view.publish(build_gate_view(plans))
