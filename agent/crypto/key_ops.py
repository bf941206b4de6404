"""The daemon's key operations: ``project.shred_key``, ``keys.status``, ``keys.rotate_master``.

All three are the operator's (root's) alone. A shred and a rotation are audited in the very
transaction that changes the keys, so neither can happen unrecorded; the audit event carries
ids and dates, never key bytes.
"""

from __future__ import annotations

from typing import Any

import structlog
from sqlmodel import Session

from agent.access.permissions import Action, may, relation_of
from agent.api.dispatch import RequestContext
from agent.api.schemas import KeyShredArgs, NoArgs
from agent.crypto.keystore import ROTATED_ACTION
from agent.errors import InvalidRequest, PermissionDenied
from agent.lifecycle.holds import check_not_held
from agent.lifecycle.transitions import held
from agent.projects.service import project_for

log = structlog.get_logger("vokterd.keys")

SHREDDED_ACTION = "project.key_shredded"


def _root_only(ctx: RequestContext, what: str) -> None:
    if not may(Action.KEY_ADMIN, relation_of(ctx.caller.uid, None)):
        raise PermissionDenied(f"only root (the enclave operator) may {what}", rule="S5",
                               hint="ask the operator")


def shred_key(ctx: RequestContext, args: KeyShredArgs) -> dict[str, Any]:
    """Destroy the project's keyset (S3): every file encrypted under it becomes unreadable.
    Never while a legal hold stands (L5): the case may need the data the key opens."""
    if args.confirm != args.project:
        raise InvalidRequest(
            f"the confirmation '{args.confirm}' does not name the project {args.project}",
            hint="type the project's id to confirm",
        )
    key_store = ctx.services.key_store
    now = ctx.services.clock.now()
    with ctx.services.store.write() as session:
        project, _relation = project_for(session, ctx, args.project, Action.KEY_SHRED)
        # In the shredding transaction: writes are serialised, so no hold slips in between.
        check_not_held(held(session, project.id), project.id, "shredding its key")
        result = key_store.shred(session, project.id, now, ctx.caller.name)
        ctx.audit(session, SHREDDED_ACTION, project=project.id, target=project.id, rule="S3",
                  details=result)
    # The tombstone is committed; now clear the old row versions out of the database files.
    purged = key_store.purge()
    if not purged["purged"]:
        log.warning("key_shred_purge_incomplete", project=project.id, how=purged["purge"])
    return {**result, **purged}


def keys_status(ctx: RequestContext, _args: NoArgs) -> dict[str, Any]:
    _root_only(ctx, "see the key store's state")
    return ctx.services.key_store.status()


def rotate_master(ctx: RequestContext, _args: NoArgs) -> dict[str, Any]:
    """Re-wrap every keyset under a new master key; the files themselves are not touched."""
    _root_only(ctx, "rotate the master key")

    def record(session: Session, result: dict[str, Any]) -> None:
        ctx.audit(session, ROTATED_ACTION, rule="S5", details=result)

    return ctx.services.key_store.rotate_master(ctx.services.clock.now(), record=record)
