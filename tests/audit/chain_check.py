"""Checking a stored audit chain from its rows alone, as an auditor's verifier would."""

from __future__ import annotations

from collections.abc import Sequence

from sqlmodel import col, select

from agent.audit.chain import GENESIS_HASH, link_hash
from agent.store import AuditEvent, Store


def recomputed_hash(row: AuditEvent) -> str:
    """The hash the chain says ``row`` must carry, computed from the stored columns only."""
    return link_hash(row)


def stored_events(store: Store) -> list[AuditEvent]:
    with store.read() as session:
        return list(session.exec(select(AuditEvent).order_by(col(AuditEvent.seq))).all())


def assert_intact_chain(rows: Sequence[AuditEvent]) -> None:
    """seq 1..N without gaps, each event linked to the one before, every hash recomputable."""
    assert [row.seq for row in rows] == list(range(1, len(rows) + 1))
    previous = GENESIS_HASH
    for row in rows:
        assert row.prev_hash == previous, f"event {row.seq} is not linked to its predecessor"
        assert row.hash == recomputed_hash(row), f"event {row.seq} does not match its hash"
        previous = row.hash
