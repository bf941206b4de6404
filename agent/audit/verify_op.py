"""``audit.verify``: who may verify which chain, and the verification itself in the trail (A5).

Root verifies the whole trail or any project's chain; a project's auditors verify that project's
chain only (it holds every event about the project, so it is checkable alone); anyone else is
refused, an outsider as if the project did not exist. The verification is recorded whatever it
finds: ``ok``, or ``damaged`` with the damage in the details. A damaged trail must not silence
that record, so it is appended after the newest stored event even if whoever damaged the trail
also moved the head cache the trail appends from.
"""

from __future__ import annotations

from typing import Any

import structlog
from sqlmodel import Session, col, select

from agent.access.permissions import Action, may, relation_of
from agent.api.dispatch import RequestContext
from agent.api.schemas import AuditVerifyArgs
from agent.audit.chain import format_time
from agent.audit.checkpoint import SignedCheckpoint, parse_checkpoint_document
from agent.audit.trail import TRAIL
from agent.audit.verify import CheckpointClaim, VerifyResult, claim_head
from agent.audit.verify_trail import verify_trail
from agent.errors import InvalidRequest, PermissionDenied
from agent.projects.service import project_for
from agent.store.tables import AuditEvent, AuditHead

__all__ = ["AuditVerifyArgs", "audit_verify", "follow_the_last_event", "result_view"]

log = structlog.get_logger("vokterd.audit")


def _authorize(ctx: RequestContext, project: str | None) -> None:
    if project is None:
        if not may(Action.AUDIT_READ, relation_of(ctx.caller.uid, None)):
            raise PermissionDenied(
                "only root verifies the whole trail",
                rule="A5",
                hint="a project's auditors verify its chain: vokter audit verify --project P",
            )
        return
    with ctx.services.store.read() as session:
        project_for(session, ctx, project, Action.AUDIT_READ)


def _kept(text: str | None) -> SignedCheckpoint | None:
    if text is None:
        return None
    try:
        return parse_checkpoint_document(text)
    except ValueError as error:
        raise InvalidRequest(
            f"--checkpoint: {error}",
            hint="pass a file saved from 'vokter audit checkpoint'",
        ) from None


def result_view(result: VerifyResult, kept: SignedCheckpoint | None) -> dict[str, Any]:
    """What the client prints (and ``--json`` shows): plain data, times in canonical text."""
    sealed, head = result.sealed, result.sealed_head
    kept_head = (None if kept is None
                 else claim_head(CheckpointClaim(kept.checkpoint, "kept"), result.mode,
                                 result.project))
    damage = result.damage
    return {
        "ok": result.ok,
        "scope": result.mode,
        "project": result.project,
        "count": result.count,
        "last": {"seq": result.last.seq, "hash": result.last.head},
        "sealed": None if sealed is None or head is None else {
            "seq": head.seq,
            "trail_seq": sealed.checkpoint.trail.seq,
            "time": format_time(sealed.checkpoint.time),
            "by": "kept" if sealed.origin == "kept" else "daemon",
        },
        "kept": None if kept is None else {
            "seq": None if kept_head is None else kept_head.seq,
            "time": format_time(kept.checkpoint.time),
        },
        "damage": None if damage is None else {
            "kind": damage.kind.value,
            "seq": damage.seq,
            "project_seq": damage.project_seq,
            "message": damage.message,
        },
    }


def follow_the_last_event(session: Session, project: str | None) -> bool:
    """Point the head cache of the chains the next event joins at their newest stored event;
    True if it had been pointing elsewhere (the rows are the truth, the cache only a cache)."""
    moved = False
    chains: list[tuple[str, Any]] = [(TRAIL, select(AuditEvent.seq, AuditEvent.hash)
               .order_by(col(AuditEvent.seq).desc()).limit(1))]
    if project is not None:
        chains.append((project, select(AuditEvent.project_seq, AuditEvent.hash)
                       .where(col(AuditEvent.project_id) == project)
                       .order_by(col(AuditEvent.project_seq).desc()).limit(1)))
    for chain, newest in chains:
        found = session.exec(newest).first()
        if found is None or found[0] is None:
            continue
        seq, digest = int(found[0]), str(found[1])
        head = session.get(AuditHead, chain)
        if head is not None and (head.seq, head.hash) == (seq, digest):
            continue
        log.warning("audit_head_moved", chain=chain or "trail", cached=None if head is None
                    else head.seq, newest=seq)
        if head is None:
            head = AuditHead(chain=chain, seq=seq, hash=digest)
        head.seq, head.hash = seq, digest
        session.add(head)
        moved = True
    session.flush()
    return moved


def audit_verify(ctx: RequestContext, args: AuditVerifyArgs) -> dict[str, Any]:
    _authorize(ctx, args.project)
    kept = _kept(args.checkpoint)
    services = ctx.services
    result = verify_trail(services.store, services.audit_keys, services.config.key_store,
                          project=args.project, kept=kept, progress=ctx.progress)
    view = result_view(result, kept)
    details: dict[str, Any] = {"scope": result.mode, "count": result.count,
                               "last_seq": result.last.seq}
    if view["sealed"] is not None:
        details["sealed_seq"] = view["sealed"]["seq"]
    if view["kept"] is not None:
        details["kept_checkpoint"] = view["kept"]
    if view["damage"] is not None:
        details["damage"] = view["damage"]
    with services.store.write() as session:
        if follow_the_last_event(session, args.project):
            details["head_cache"] = "moved back to the newest stored event"
        ctx.audit(session, "audit.verify", outcome="ok" if result.ok else "damaged",
                  project=args.project, target=args.project,
                  rule=None if result.ok else "A5", details=details)
    return view
