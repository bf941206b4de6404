"""Stored checkpoints are thinned as they age (A5): the newest hour whole, older ones sparse."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlmodel import col, select

from agent.audit import seal
from agent.audit.checkpoint import ChainHead, Checkpoint
from agent.audit.keys import load_or_create_audit_keys
from agent.store import AuditCheckpoint, Store


def test_a5_old_checkpoints_are_thinned_and_the_newest_are_all_kept(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(seal, "KEEP_RECENT", 10)
    monkeypatch.setattr(seal, "KEEP_EVERY", 5)
    keys = load_or_create_audit_keys(tmp_path / "keystore")
    start = datetime(2026, 11, 23, 12, tzinfo=UTC)
    for n in range(1, 31):
        checkpoint = Checkpoint(time=start + timedelta(seconds=n), key_id=keys.key_id,
                                trail=ChainHead(n, f"{n:064x}"))
        with store.write() as session:
            seal.store_checkpoint(session, seal.sign_checkpoint(checkpoint, keys))
    with store.read() as session:
        kept = list(session.exec(select(AuditCheckpoint.seq).order_by(col(AuditCheckpoint.id))))
    assert kept == [5, 10, 15, *range(20, 31)]
    with store.read() as session:
        newest = seal.latest_stored(session)
    assert newest is not None and newest.checkpoint.trail.seq == 30
    assert seal.is_signed_by(newest, keys)
