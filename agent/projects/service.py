"""Project requests, as the daemon carries them out: check, create zones, record, audit."""

from __future__ import annotations

from typing import Any

from sqlmodel import Session, col, or_, select

from agent.access.enforce import apply_zone_root
from agent.access.permissions import Action, Relation, hides_existence, may, relation_of
from agent.access.plan import plan_access
from agent.access.sync import project_zones, publish_gate_view
from agent.access.users import lookup_user
from agent.api.dispatch import RequestContext
from agent.api.schemas import NoArgs, ProjectCreateArgs, ProjectRef
from agent.errors import AlreadyExists, NotFound, PermissionDenied
from agent.projects import rules, zones
from agent.store.tables import Member, Project


def project_view(project: Project) -> dict[str, Any]:
    return {
        "project": project.id,
        "title": project.title,
        "leader": project.leader,
        "end_date": project.end_date.isoformat(),
        "state": project.state,
        "zones": {
            "data": project.data_root,
            "key": project.key_root,
            "export": project.export_root,
            "quarantine": project.quarantine_root,
        },
        "policy": project.policy,
        "created_at": project.created_at.isoformat(),
        "created_by": project.created_by,
    }


def _active_roles(session: Session, project: str, uid: int) -> list[str]:
    rows = session.exec(
        select(Member.role).where(
            Member.project_id == project, Member.uid == uid, col(Member.revoked_at).is_(None)
        )
    ).all()
    return list(rows)


def caller_relation(session: Session, ctx: RequestContext, project: Project) -> Relation:
    roles = _active_roles(session, project.id, ctx.caller.uid)
    return relation_of(ctx.caller.uid, project.leader_uid, roles)


def create_project(ctx: RequestContext, args: ProjectCreateArgs) -> dict[str, Any]:
    if not may(Action.PROJECT_CREATE, relation_of(ctx.caller.uid, None)):
        raise PermissionDenied(
            "only root (the enclave operator) creates projects",
            hint="ask the operator to run 'vokter project create'",
        )
    project_id = rules.check_project_id(args.project)
    title = rules.check_title(args.title)
    leader = lookup_user(rules.check_user_name(args.leader))
    end_date = rules.check_end_date(args.end_date, ctx.today())
    config = ctx.services.config
    plan = rules.plan_zones(
        project_id, str(config.zones_dir), args.data_dir, args.key_dir, args.export_dir
    )
    policy = ctx.services.policies.current()
    with ctx.services.store.read() as session:
        if session.get(Project, project_id) is not None:
            raise AlreadyExists(f"project {project_id} already exists")

    zones.ensure_zones_root(config.zones_dir)
    created = zones.create_zones(plan)
    warnings: list[str] = []
    if policy.storage.key_separation == "separate_filesystem" and zones.same_filesystem(
        plan.data, plan.key
    ):
        warnings.append(
            f"S5: the key zone {plan.key} is on the same file system as the data zone; "
            "the policy wants the linkage key on a separate file system (--key-dir)"
        )
    now = ctx.services.clock.now()
    row = Project(
        id=project_id,
        title=title,
        leader=leader.name,
        leader_uid=leader.uid,
        end_date=end_date,
        state="active",
        data_root=plan.data,
        key_root=plan.key,
        export_root=plan.export,
        quarantine_root=plan.quarantine,
        policy=policy.name,
        created_at=now,
        created_by=ctx.caller.name,
    )
    try:
        with ctx.services.store.write() as session:
            if session.get(Project, project_id) is not None:
                raise AlreadyExists(f"project {project_id} already exists")
            session.add(row)
            session.flush()
            # The project's keyset is born with it, wrapped by the master key (S3).
            ctx.services.key_store.create(session, project_id, now)
            session.add(
                Member(
                    project_id=project_id,
                    user=leader.name,
                    uid=leader.uid,
                    role="leader",
                    granted_by=ctx.caller.name,
                    reason="project leader, named at creation",
                    granted_at=now,
                )
            )
            ctx.audit(
                session,
                "project.create",
                project=project_id,
                target=project_id,
                details={
                    "leader": leader.name,
                    "end_date": end_date.isoformat(),
                    "zones": plan.zones(),
                    "warnings": warnings,
                },
            )
    except BaseException:
        zones.remove_created(created)
        raise
    # The leader reaches the data zone from the first moment; the gate guards the new zones.
    publish_gate_view(ctx.services)
    for zone in plan_access(project_zones(row), []).zones:
        apply_zone_root(zone)
    return {**project_view(row), "warnings": warnings}


def project_for(
    session: Session, ctx: RequestContext, project_id: str, action: Action
) -> tuple[Project, Relation]:
    """The project, if the caller may do ``action`` on it; outsiders learn nothing of it."""
    rules.check_project_id(project_id)
    row = session.get(Project, project_id)
    if row is None:
        raise NotFound(f"no project {project_id}", hint="see 'vokter project list'")
    relation = caller_relation(session, ctx, row)
    if not may(action, relation):
        if hides_existence(relation):
            raise NotFound(f"no project {project_id}", hint="see 'vokter project list'")
        raise PermissionDenied(
            f"as {relation.value.replace('_', ' ')} of {project_id} you may not do this "
            f"({action.value})",
            rule="A1",
        )
    return row, relation


def _visible_project(session: Session, ctx: RequestContext, project_id: str) -> Project:
    return project_for(session, ctx, project_id, Action.PROJECT_SHOW)[0]


def show_project(ctx: RequestContext, args: ProjectRef) -> dict[str, Any]:
    with ctx.services.store.read() as session:
        row = _visible_project(session, ctx, args.project)
        members = session.exec(
            select(Member).where(Member.project_id == row.id, col(Member.revoked_at).is_(None))
        ).all()
        view = project_view(row)
        view["members"] = len(members)
        return view


def visible_projects(session: Session, uid: int) -> list[Project]:
    """Root sees every project; anyone else the projects they lead or hold a role in."""
    query = select(Project).order_by(col(Project.id))
    if uid != 0:
        member_of = select(Member.project_id).where(
            Member.uid == uid, col(Member.revoked_at).is_(None)
        )
        query = query.where(or_(col(Project.leader_uid) == uid, col(Project.id).in_(member_of)))
    return list(session.exec(query).all())


def list_projects(ctx: RequestContext, _args: NoArgs) -> list[dict[str, Any]]:
    with ctx.services.store.read() as session:
        return [project_view(p) for p in visible_projects(session, ctx.caller.uid)]
