"""Making signed checkpoints: the shell around the pure checkpoint format and verifier.

A checkpoint extends the previous one only after the events since then have been verified
(links, hashes, MACs) from the previous signed head: the daemon never signs what it has not
checked, so someone who rewrites the database between two checkpoints cannot get the rewrite
signed. The newest checkpoint is also kept in the key store, out of reach of whoever can write
the database, so cutting the trail's tail is caught even if the checkpoint rows are cut too.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

from sqlalchemy import delete
from sqlmodel import Session, col, select

from agent.audit.checkpoint import (
    Checkpoint,
    SignedCheckpoint,
    checkpoint_payload,
    parse_checkpoint_document,
)
from agent.audit.keys import AuditKeys, key_store_dir, signature_valid
from agent.audit.rows import event_at, trail_rows
from agent.audit.verify import EMPTY_CHAIN, ChainVerifier, Damage, DamageKind
from agent.durable import replace_durably
from agent.errors import AuditUnavailable
from agent.store.tables import AuditCheckpoint

CHECKPOINT_FILE = "checkpoint.json"


def sign_checkpoint(checkpoint: Checkpoint, keys: AuditKeys) -> SignedCheckpoint:
    payload = checkpoint_payload(checkpoint)
    return SignedCheckpoint(checkpoint, payload, keys.sign(payload.encode("ascii")))


def is_signed_by(signed: SignedCheckpoint, keys: AuditKeys) -> bool:
    return signature_valid(keys.public_key, signed.signature, signed.payload.encode("ascii"))


def still_holds(session: Session, previous: Checkpoint) -> Damage | None:
    """Is the event a checkpoint sealed last still there, unchanged?"""
    if previous.trail.seq == 0:
        return None
    row = event_at(session, previous.trail.seq)
    if row is None:
        return Damage(DamageKind.TAIL_CUT, previous.trail.seq,
                      f"event {previous.trail.seq}, sealed by the last checkpoint, is gone: "
                      "the trail's tail was cut off")
    if row[14] != previous.trail.head:
        return Damage(DamageKind.CHANGED, previous.trail.seq,
                      f"event {previous.trail.seq} is not the one the last checkpoint sealed")
    return None


def extend(
    session: Session, keys: AuditKeys, now: datetime, previous: Checkpoint | None
) -> tuple[SignedCheckpoint | None, Damage | None]:
    """A new checkpoint over the events after ``previous``, or the damage that forbids one.
    (None, None) when nothing was appended since ``previous``."""
    if previous is not None:
        damage = still_holds(session, previous)
        if damage is not None:
            return None, damage
    verifier = ChainVerifier(
        "trail",
        mac_key=keys.mac_key,
        start=previous.trail if previous else EMPTY_CHAIN,
        project_starts=dict(previous.projects) if previous else {},
    )
    verifier.feed(trail_rows(session, after_seq=previous.trail.seq if previous else 0))
    result = verifier.finish()
    if result.damage is not None:
        return None, result.damage
    if previous is not None and result.last == previous.trail:
        return None, None
    checkpoint = Checkpoint(time=now, key_id=keys.key_id, trail=result.last,
                            projects=result.projects)
    return sign_checkpoint(checkpoint, keys), None


#: Checkpoints kept whole: at one a second, the last hour.
KEEP_RECENT = 3600
#: Older ones are thinned to one in this many (about one each ten minutes of a busy trail).
KEEP_EVERY = 600


def store_checkpoint(session: Session, signed: SignedCheckpoint) -> None:
    """Store ``signed`` and thin the old ones: a busy trail is sealed every second and each
    checkpoint names every project, so keeping all would outgrow the events. Only the newest
    is ever needed to verify; the thinned history is for auditors who ask what was sealed when."""
    checkpoint = signed.checkpoint
    row = AuditCheckpoint(
        time=checkpoint.time, seq=checkpoint.trail.seq, head=checkpoint.trail.head,
        key_id=checkpoint.key_id, payload=signed.payload,
        signature=signed.document()["signature"],
    )
    session.add(row)
    session.flush()
    assert row.id is not None
    if row.id > KEEP_RECENT and row.id % KEEP_EVERY == 0:
        session.execute(
            delete(AuditCheckpoint).where(
                col(AuditCheckpoint.id) < row.id - KEEP_RECENT,
                col(AuditCheckpoint.id) % KEEP_EVERY != 0,
            )
        )


def latest_stored(session: Session) -> SignedCheckpoint | None:
    row = session.exec(
        select(AuditCheckpoint).order_by(col(AuditCheckpoint.id).desc()).limit(1)
    ).first()
    if row is None:
        return None
    return parse_checkpoint_document(
        json.dumps({"payload": row.payload, "signature": row.signature})
    )


def write_checkpoint_file(key_store: Path, signed: SignedCheckpoint) -> None:
    """Replace the kept checkpoint crash-safely: temporary file, fsync, rename, fsync folder."""
    replace_durably(key_store_dir(key_store), CHECKPOINT_FILE, signed.to_json().encode("ascii"))


def read_checkpoint_file(key_store: Path, keys: AuditKeys) -> SignedCheckpoint | None:
    """The checkpoint kept in the key store; one not signed by our key is refused loudly."""
    path = key_store_dir(key_store) / CHECKPOINT_FILE
    try:
        text = path.read_bytes()
    except FileNotFoundError:
        return None
    try:
        signed = parse_checkpoint_document(text)
    except ValueError as error:
        raise AuditUnavailable(f"{path}: {error}", hint="restore it from backup") from None
    if not is_signed_by(signed, keys):
        raise AuditUnavailable(f"{path} is not signed by this trail's key",
                               hint="someone replaced it; investigate before going on")
    return signed
