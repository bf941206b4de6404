"""``audit.pubkey`` and ``audit.checkpoint``: what an auditor takes out of the enclave, and what
``vokter status`` says about sealing.

The public key is no secret: anyone may have it. A checkpoint names every project, so it goes to
root and to whoever audits at least one project; they keep it to prove later that the trail was
not cut or replaced since (``vokter audit verify --checkpoint FILE``).
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field
from sqlmodel import col, or_, select

from agent.api.dispatch import RequestContext
from agent.api.schemas import Args, NoArgs
from agent.audit.chain import format_time
from agent.audit.checkpoint import SignedCheckpoint
from agent.audit.reanchor import accept_damage
from agent.audit.sealing import (
    TrailDamage,
    daemon_caller,
    kept_checkpoint,
    seal,
    unresolved_damage,
)
from agent.errors import Failed, InvalidRequest, NotFound, PermissionDenied
from agent.services import Services
from agent.store.tables import Member

Reason = Annotated[str, Field(min_length=1, max_length=1000)]


class CheckpointArgs(Args):
    #: Root only: accept the damage that stops sealing, and why (``agent.audit.reanchor``).
    accept_damage: Reason | None = None


def audit_pubkey(ctx: RequestContext, _args: NoArgs) -> dict[str, str]:
    keys = ctx.services.audit_keys
    return {"key_id": keys.key_id, "pem": keys.public_pem}


def _audits_a_project(ctx: RequestContext) -> bool:
    today = ctx.today()
    with ctx.services.store.read() as session:
        found = session.exec(
            select(Member.id).where(
                Member.uid == ctx.caller.uid,
                Member.role == "auditor",
                col(Member.revoked_at).is_(None),
                or_(col(Member.expires_at).is_(None), col(Member.expires_at) >= today),
            ).limit(1)
        ).first()
    return found is not None


def _damage_view(damage: TrailDamage) -> dict[str, Any]:
    return {"kind": damage.kind, "seq": damage.seq, "message": damage.message}


def checkpoint_view(signed: SignedCheckpoint) -> dict[str, Any]:
    checkpoint = signed.checkpoint
    return {
        "document": signed.document(),
        "seq": checkpoint.trail.seq,
        "head": checkpoint.trail.head,
        "time": format_time(checkpoint.time),
        "key_id": checkpoint.key_id,
        "projects": {name: {"seq": head.seq, "head": head.head}
                     for name, head in sorted(checkpoint.projects.items())},
    }


def _check_reason(text: str) -> str:
    reason = " ".join(text.split())
    if not reason or not reason.isprintable():
        raise InvalidRequest("the reason must be printable text on one line", rule="A5")
    return reason


def audit_checkpoint(ctx: RequestContext, args: CheckpointArgs) -> dict[str, Any]:
    """Seal what moved, then hand out the newest checkpoint. When damage stops sealing, the
    last good checkpoint comes with the damage named (``fresh`` is then false)."""
    services = ctx.services
    if ctx.caller.uid != 0 and not _audits_a_project(ctx):
        raise PermissionDenied(
            "only root and the auditors of a project get the trail's checkpoints", rule="A5",
            hint="the operator appoints auditors: vokter member add PROJECT USER --role auditor",
        )
    if args.accept_damage is not None:
        if ctx.caller.uid != 0:
            raise PermissionDenied("only root (the operator) accepts damage to the trail",
                                   rule="A5")
        result = accept_damage(services, ctx.caller, _check_reason(args.accept_damage))
    else:
        result = seal(services, daemon_caller())
    damage = result.damage if args.accept_damage is None else None
    if result.latest is None:
        if damage is not None:
            raise Failed(f"the trail is damaged and no checkpoint can be signed: "
                         f"{damage.message}", rule="A5",
                         hint="run 'vokter audit verify'; see docs/audit.md")
        raise NotFound("there is no checkpoint yet: the trail is empty")
    return {
        **checkpoint_view(result.latest),
        "fresh": damage is None,
        "damage": _damage_view(damage) if damage is not None else None,
        "accepted": _damage_view(result.damage)
        if args.accept_damage is not None and result.damage is not None else None,
    }


def checkpoint_status(services: Services) -> dict[str, Any]:
    """For ``vokter status``: the newest trusted checkpoint, its age, the key, and what stops
    sealing if something does."""
    signed, refused = kept_checkpoint(services)
    status: dict[str, Any] = {"key_id": services.audit_keys.key_id, "checkpoint": None}
    if signed is not None:
        age = (services.clock.now() - signed.checkpoint.time).total_seconds()
        status["checkpoint"] = {"seq": signed.checkpoint.trail.seq,
                                "time": format_time(signed.checkpoint.time),
                                "age_seconds": round(max(age, 0.0), 1)}
    damage = unresolved_damage(services, signed)
    if refused is not None:
        status["refused"] = refused
    status["sealing"] = "stopped" if damage is not None or refused is not None else "ok"
    if damage is not None:
        status["damage"] = damage
    return status
