"""Verifying the stored trail: the shell around the pure verifier (``vokter audit verify``).

The events are streamed from the database through :class:`ChainVerifier` with the MAC key, and
held against every signed checkpoint there is to hold them against:

- the one the daemon keeps in the key store, out of reach of whoever can write the database, so
  a tail cut together with the checkpoint rows still shows;
- the newest checkpoint row in the database; one this trail's key did not sign is damage in
  itself (someone wrote it), reported after any damage to the events;
- the one an auditor kept (``--checkpoint FILE``), the only thing that shows the whole database
  replaced by an older copy when the key store went back with it. One signed by another key is
  refused: it says nothing about this trail.

Call it as ``verify_trail(store, keys, key_store, project=None, kept=None, processes=None)``;
benchmarks do.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import func
from sqlmodel import Session, col, select

from agent.audit.checkpoint import Checkpoint, SignedCheckpoint, parse_checkpoint_document
from agent.audit.keys import AuditKeys, key_store_dir
from agent.audit.parallel import verify_in_stretches
from agent.audit.rows import project_rows, trail_rows
from agent.audit.seal import CHECKPOINT_FILE, is_signed_by
from agent.audit.verify import (
    ChainVerifier,
    CheckpointClaim,
    Damage,
    DamageKind,
    VerifyResult,
)
from agent.errors import InvalidRequest
from agent.store import Store
from agent.store.tables import AuditCheckpoint, AuditEvent


def check_kept(kept: SignedCheckpoint, keys: AuditKeys) -> None:
    """An auditor's checkpoint counts only if this daemon's key signed it."""
    if is_signed_by(kept, keys):
        return
    if kept.checkpoint.key_id != keys.key_id:
        raise InvalidRequest(
            f"the checkpoint was signed by key {kept.checkpoint.key_id[:16]}, not by this "
            f"daemon's key {keys.key_id}: it is another trail's",
            hint="verify it against the daemon that signed it; 'vokter audit pubkey' names "
                 "this one's key",
        )
    raise InvalidRequest(
        "the checkpoint names this daemon's key but its signature does not verify: the file "
        "was altered after it was signed",
        hint="use an unaltered copy, e.g. the output of 'vokter audit checkpoint' kept before",
    )


def key_store_checkpoint(
    key_store: Path, keys: AuditKeys
) -> tuple[SignedCheckpoint | None, Damage | None]:
    """The checkpoint kept in the key store, if this trail's key signed it; else the damage it
    is (only root could have replaced it). A key store open to others is an error, not damage."""
    path = key_store_dir(key_store) / CHECKPOINT_FILE
    try:
        text = path.read_bytes()
    except FileNotFoundError:
        return None, None
    try:
        signed = parse_checkpoint_document(text)
    except ValueError as error:
        return None, Damage(DamageKind.FORGED_CHECKPOINT, None,
                            f"the key store's checkpoint {path} is not one: {error}")
    if not is_signed_by(signed, keys):
        return None, Damage(
            DamageKind.FORGED_CHECKPOINT, signed.checkpoint.trail.seq,
            f"the key store's checkpoint {path} is not signed by this trail's key: it was "
            "replaced")
    return signed, None


def newest_stored_checkpoint(
    session: Session, keys: AuditKeys
) -> tuple[SignedCheckpoint | None, Damage | None]:
    """The newest checkpoint row, if this trail's key signed it; else the damage it is."""
    # Only the signed columns: the others are a cache of them, and whoever wrote a bad row
    # may have left them unreadable.
    row = session.exec(
        select(AuditCheckpoint.id, AuditCheckpoint.payload, AuditCheckpoint.signature)
        .order_by(col(AuditCheckpoint.id).desc()).limit(1)
    ).first()
    if row is None:
        return None, None
    row_id, payload, signature = row
    try:
        signed = parse_checkpoint_document(
            json.dumps({"payload": payload, "signature": signature})
        )
    except (ValueError, TypeError):
        return None, Damage(
            DamageKind.FORGED_CHECKPOINT, None,
            f"the newest checkpoint in the database (row {row_id}) is not a checkpoint at all: "
            "someone wrote it")
    if not is_signed_by(signed, keys):
        seq = signed.checkpoint.trail.seq
        return None, Damage(
            DamageKind.FORGED_CHECKPOINT, seq,
            f"the newest checkpoint in the database (row {row_id}, for event {seq}) is not "
            "signed by this trail's key: it was forged or altered")
    return signed, None


def verify_trail(
    store: Store,
    keys: AuditKeys,
    key_store: Path,
    *,
    project: str | None = None,
    kept: SignedCheckpoint | None = None,
    processes: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> VerifyResult:
    """The whole trail (``project=None``) or one project's chain, verified from its start.

    A whole SQLite trail long enough to gain from it is verified on ``processes`` cores (all
    it may use by default; 1 for one process), and again in one piece if that finds anything
    but an intact trail. ``progress(done, total)`` hears how far it got now and then.

    Raises ``InvalidRequest`` for a ``kept`` checkpoint not signed by ``keys`` and
    ``AuditUnavailable`` when the key store is open to others; damage is never raised, it is
    in the result (``result.ok``, ``result.damage``), a checkpoint the key did not sign
    included.
    """
    claims: list[CheckpointClaim] = []
    if kept is not None:
        check_kept(kept, keys)
        claims.append(CheckpointClaim(kept.checkpoint, "kept"))
    in_key_store, replaced = key_store_checkpoint(key_store, keys)
    if in_key_store is not None:
        claims.append(CheckpointClaim(in_key_store.checkpoint, "daemon"))
    with store.read() as session:
        stored, forged = newest_stored_checkpoint(session, keys)
        forged = replaced or forged
        if stored is not None:
            claims.append(CheckpointClaim(stored.checkpoint, "daemon"))
    path = None if store.backend != "sqlite" else store.engine.url.database
    result = None
    if project is None and path and processes != 1:
        result = verify_in_stretches(Path(path), keys.mac_key, claims, processes=processes,
                                     progress=progress)
    with store.read() as session:
        if result is None:
            verifier = ChainVerifier(
                "trail" if project is None else "project",
                mac_key=keys.mac_key,
                project=project,
                claims=claims,
            )
            report = None
            if progress is not None:
                total = _length(session, project)
                report = lambda count: progress(min(count, total), total)  # noqa: E731
            verifier.feed_all(
                trail_rows(session) if project is None else project_rows(session, project),
                report)
            result = verifier.finish()
        if result.damage is not None and result.damage.checkpoint is not None:
            result = dataclasses.replace(result, damage=_where_it_parted(
                session, result.damage, result.damage.checkpoint, project))
    if result.ok and forged is not None:
        result = dataclasses.replace(result, damage=forged)
    return result


def _length(session: Session, project: str | None) -> int:
    """How many events the chain should hold, for progress reports only."""
    newest: Any = (select(func.max(AuditEvent.seq)) if project is None else
                   select(func.max(AuditEvent.project_seq))
                   .where(col(AuditEvent.project_id) == project))
    found = session.exec(newest).first()
    return int(found) if isinstance(found, int) else 0


def _where_it_parted(
    session: Session, damage: Damage, checkpoint: Checkpoint, project: str | None
) -> Damage:
    """A trail cut back or replaced and written on since differs from the sealed one well
    before the damage the checkpoint shows: from the first event it covers that was written
    after it was made. The times can be trusted here: every event verified."""
    head = checkpoint.trail if project is None else checkpoint.projects.get(project)
    if head is None:
        return damage
    position = col(AuditEvent.seq) if project is None else col(AuditEvent.project_seq)
    query = select(AuditEvent.seq, AuditEvent.project_seq).where(
        position <= head.seq, col(AuditEvent.time) > checkpoint.time)
    if project is not None:
        query = query.where(col(AuditEvent.project_id) == project)
    first = session.exec(query.order_by(position).limit(1)).first()
    if first is None:
        return damage
    seq, project_seq = first
    at = seq if project is None else project_seq
    found = damage.seq if project is None else damage.project_seq
    if at is None or (found is not None and at >= found):
        return damage
    name = f"event {seq}" if project is None else f"{project}'s event {project_seq}"
    when = checkpoint.time.strftime("%Y-%m-%d %H:%M:%S UTC")
    return dataclasses.replace(
        damage, seq=seq, project_seq=None if project is None else project_seq,
        message=f"{name} was written after the checkpoint of {when}, which covers up to "
                f"event {head.seq}: the trail was cut back or replaced by an older copy there "
                f"and written on since ({damage.message})")
