"""Membership requests as the daemon carries them out: check, record, audit, then enforce.

Order matters. Every check runs before anything is written, so a refusal changes nothing. The
grant or removal and its audit event commit together. Only then does the file system follow:
first the gate's view (a removal is effective for every open from that instant), then the zone
roots (O(1): no path lookup into the zone any more), then the deep ACL pass and the hand-over of
the leaver's files, whose cost grows with the tree but no longer matters for who can read.
If the daemon dies in between, the periodic check converges the tree to the stored list.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import structlog
from sqlmodel import Session, col, select

from agent.access import rules
from agent.access.enforce import ApplyReport, apply_acl_plan, apply_zone_root
from agent.access.permissions import GRANT_ACTION, REVOKE_ACTION, Action, may
from agent.access.plan import AccessPlan
from agent.access.processes import ProcessHold, find_holders, terminate
from agent.access.sync import (
    active_grants,
    active_members,
    leader_reads_after_end,
    project_plan,
    publish_gate_view,
)
from agent.access.users import lookup_user
from agent.api.dispatch import RequestContext
from agent.api.schemas import MemberAddArgs, MemberRemoveArgs, ProjectRef
from agent.audit.redact import redact_identity_numbers
from agent.errors import InvalidRequest, NotFound, PermissionDenied, RuleViolation
from agent.projects import rules as project_rules
from agent.projects.service import project_for
from agent.store.tables import Member, Project

log = structlog.get_logger("vokterd.access")

MAX_REPORTED_PROCESSES = 50


def member_view(member: Member) -> dict[str, Any]:
    return {
        "user": member.user,
        "uid": member.uid,
        "role": member.role,
        "granted_by": member.granted_by,
        "reason": member.reason,
        "granted_at": member.granted_at.isoformat(),
        "expires": member.expires_at.isoformat() if member.expires_at else None,
    }


def acl_summary(report: ApplyReport) -> dict[str, int]:
    return {"checked": report.checked, "changed": report.changed}


def authorize(
    session: Session, ctx: RequestContext, project_id: str, action: Action
) -> Project:
    """Outsiders learn nothing; insiders are told which rule keeps them out."""
    project, relation = project_for(session, ctx, project_id, Action.MEMBER_LIST)
    if may(action, relation):
        return project
    if action in (Action.AUDITOR_APPOINT, Action.AUDITOR_REMOVE):
        raise PermissionDenied(
            "only root (the operator) appoints or removes auditors",
            rule="A2",
            hint="ask the operator; the auditor comes from the research-responsible institution",
        )
    raise PermissionDenied(
        f"only root and the leader of {project.id} add or remove members and key custodians",
        rule="A1",
        hint=f"ask {project.leader}, the project leader",
    )


def check_grantable(project_id: str, state: str, role: str) -> None:
    """Pure: after a project's end nobody is given access to it (L8), or the end's taking
    access away would be undone by a grant. An auditor may still be appointed: auditors keep
    the logs, which outlive the project, and the zones admit no auditor anyway."""
    if state != "active" and role != "auditor":
        raise RuleViolation(
            f"{project_id} has ended ({state}): no one is given a role in it any more",
            rule="L8",
            hint="the leader keeps read access; root may still appoint an auditor")


def add_member(ctx: RequestContext, args: MemberAddArgs) -> dict[str, Any]:
    role = rules.check_role(args.role)
    reason = rules.check_reason(args.reason)
    user_name = project_rules.check_user_name(args.user)
    services = ctx.services
    policy = services.policies.current()
    action = GRANT_ACTION[role]
    with services.store.read() as session:
        project = authorize(session, ctx, args.project, action)
    check_grantable(project.id, project.state, role)
    expires = rules.check_expiry(args.expires, ctx.today(), project.end_date)
    user = lookup_user(user_name)
    if user.uid == 0:
        raise InvalidRequest("root has access to everything already and is never a member")
    now = services.clock.now()
    with services.store.write() as session:
        # Again where the grant is written: the project may have ended since (writes are
        # serialised, so the end cannot slip in between this check and the grant).
        current = session.get(Project, project.id)
        check_grantable(project.id, project.state if current is None else current.state, role)
        rules.check_grant(
            active_grants(session, project.id),
            user=user.name,
            uid=user.uid,
            role=role,
            leader_uid=project.leader_uid,
            members_may_hold_key=policy.storage.members_may_hold_key,
        )
        member = Member(
            project_id=project.id,
            user=user.name,
            uid=user.uid,
            role=role,
            granted_by=ctx.caller.name,
            reason=reason,
            granted_at=now,
            expires_at=expires,
        )
        session.add(member)
        ctx.audit(
            session,
            "member.add",
            project=project.id,
            target=user.name,
            rule="A4",
            details={"uid": user.uid, "role": role, "reason": reason,
                     "expires": expires.isoformat() if expires else None},
        )
        session.flush()
        view = member_view(member)
        plan = project_plan(session, project,
                            leader_reads_after_end=leader_reads_after_end(services))
    publish_gate_view(services)
    report = enforce_plan(plan)
    return {"project": project.id, **view, "acl": acl_summary(report)}


def enforce_plan(plan: AccessPlan, handover: Mapping[int, int] | None = None) -> ApplyReport:
    """Zone roots first (what makes a change effective), then every file in the zones."""
    for zone in plan.zones:
        apply_zone_root(zone)
    report = apply_acl_plan(plan, handover=handover)
    if report.errors:
        log.warning("acl_apply_incomplete", project=plan.project, errors=len(report.errors),
                    first=redact_identity_numbers(report.errors[0]))
    return report


@dataclass(frozen=True, slots=True)
class Removal:
    """What a removal did, for the caller and for the audit trail."""

    project: str
    user: str
    uid: int
    role: str
    revoked_at: str
    effective_ms: float
    report: ApplyReport
    holds: tuple[ProcessHold, ...]
    terminated: tuple[int, ...]

    def view(self) -> dict[str, Any]:
        return {
            "project": self.project,
            "user": self.user,
            "role": self.role,
            "revoked_at": self.revoked_at,
            "effective_ms": round(self.effective_ms, 2),
            "handed_over": self.report.handed_over,
            "acl": acl_summary(self.report),
            "processes": [
                {"pid": h.pid, "user": h.user, "program": h.program, "paths": list(h.paths)}
                for h in self.holds[:MAX_REPORTED_PROCESSES]
            ],
            "terminated": list(self.terminated),
        }


def revoke(
    ctx: RequestContext,
    project: Project,
    member: Member,
    *,
    reason: str,
    terminate_processes: bool,
    action: str = "member.remove",
) -> Removal:
    """End one grant and carry the end through to the gate, the ACLs, files and processes."""
    services = ctx.services
    started = time.monotonic()
    with services.store.write() as session:
        row = session.get(Member, member.id)
        if row is None or row.revoked_at is not None:
            raise NotFound(f"{member.user} no longer holds that role in {project.id}")
        row.revoked_at = services.clock.now()
        row.revoked_by = ctx.caller.name
        row.revoke_reason = reason
        session.add(row)
        ctx.audit(
            session,
            action,
            project=project.id,
            target=member.user,
            rule="A3",
            details={"uid": member.uid, "role": member.role, "reason": reason},
        )
        session.flush()
        revoked_at = row.revoked_at.isoformat()
        plan = project_plan(session, project,
                            leader_reads_after_end=leader_reads_after_end(services))
        still_held = [m for m in active_members(session, project.id) if m.uid == member.uid]
    publish_gate_view(services)
    for zone in plan.zones:
        apply_zone_root(zone)
    effective_ms = (time.monotonic() - started) * 1000
    handover: dict[int, int] = {}
    if not still_held and project.leader_uid is not None:
        handover[member.uid] = project.leader_uid
    report = apply_acl_plan(plan, handover=handover)
    holds: tuple[ProcessHold, ...] = ()
    ended: tuple[int, ...] = ()
    if not still_held:
        holds = tuple(find_holders(member.uid, [z.path for z in plan.zones]))
        if terminate_processes and holds:
            ended = tuple(terminate(holds))
    with services.store.write() as session:
        ctx.audit(
            session,
            "member.offboard",
            project=project.id,
            target=member.user,
            rule="A3",
            details={
                "uid": member.uid,
                "handed_over": report.handed_over,
                "acl_changed": report.changed,
                "acl_errors": len(report.errors),
                "processes": [
                    {"pid": h.pid, "program": redact_identity_numbers(h.program)}
                    for h in holds[:MAX_REPORTED_PROCESSES]
                ],
                "terminated": list(ended),
            },
        )
    return Removal(project.id, member.user, member.uid, member.role, revoked_at, effective_ms,
                   report, holds, ended)


def remove_member(ctx: RequestContext, args: MemberRemoveArgs) -> dict[str, Any]:
    reason = rules.check_reason(args.reason)
    user_name = project_rules.check_user_name(args.user)
    role = None if args.role is None else _removable_role(args.role)
    services = ctx.services
    with services.store.read() as session:
        project = authorize(session, ctx, args.project, Action.MEMBER_LIST)
        members = [m for m in active_members(session, project.id) if m.role != "leader"]
    if user_name == project.leader and role in (None, "leader"):
        raise InvalidRequest(
            f"{user_name} leads {project.id}; the leader cannot be removed from the project",
            hint="a project keeps its leader until its end",
        )
    uid = next((m.uid for m in members if m.user == user_name), None)
    if uid is None:
        if args.terminate:
            return end_leftover_processes(ctx, project, user_name)
        raise NotFound(f"{user_name} has no access to {project.id}",
                       hint=f"see 'vokter member list {project.id}'")
    grant = rules.find_grant([rules.Grant(m.user, m.uid, m.role) for m in members],
                             user=user_name, uid=uid, role=role)
    with services.store.read() as session:
        authorize(session, ctx, project.id, REVOKE_ACTION[grant.role])
    member = next(m for m in members if m.uid == uid and m.role == grant.role)
    removal = revoke(ctx, project, member, reason=reason, terminate_processes=args.terminate)
    return removal.view()


def end_leftover_processes(ctx: RequestContext, project: Project, user_name: str) -> dict[str, Any]:
    """A3, second pass: ``remove --terminate`` after a removal that only listed processes."""
    with ctx.services.store.read() as session:
        authorize(session, ctx, project.id, Action.MEMBER_REVOKE)
        former = session.exec(
            select(Member).where(Member.project_id == project.id, Member.user == user_name,
                                 col(Member.revoked_at).is_not(None))
            .order_by(col(Member.id).desc())
        ).first()
    if former is None or former.revoked_at is None:
        raise NotFound(f"{user_name} never had access to {project.id}",
                       hint=f"see 'vokter access review {project.id}'")
    plan_paths = [project.data_root, project.key_root, project.export_root,
                  project.quarantine_root]
    holds = tuple(find_holders(former.uid, plan_paths))
    ended = tuple(terminate(holds)) if holds else ()
    with ctx.services.store.write() as session:
        ctx.audit(session, "member.offboard", project=project.id, target=user_name, rule="A3",
                  details={"uid": former.uid, "terminated": list(ended),
                           "processes": [{"pid": h.pid, "program": h.program}
                                         for h in holds[:MAX_REPORTED_PROCESSES]]})
    return Removal(project.id, user_name, former.uid, former.role,
                   former.revoked_at.isoformat(), 0.0, ApplyReport(), holds, ended).view()


def _removable_role(role: str) -> str:
    if role == "leader":
        raise InvalidRequest("the leader cannot be removed from the project")
    return rules.check_role(role)


def list_members(ctx: RequestContext, args: ProjectRef) -> list[dict[str, Any]]:
    with ctx.services.store.read() as session:
        project = authorize(session, ctx, args.project, Action.MEMBER_LIST)
        return [member_view(m) for m in active_members(session, project.id)]


def members_of(session: Session, project_id: str, *, include_revoked: bool) -> list[Member]:
    query = select(Member).where(Member.project_id == project_id)
    if not include_revoked:
        query = query.where(col(Member.revoked_at).is_(None))
    return list(session.exec(query.order_by(col(Member.granted_at), col(Member.id))).all())
