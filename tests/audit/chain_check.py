"""Checking a stored audit chain from its rows alone, as an auditor's verifier would."""

from __future__ import annotations

from collections.abc import Sequence

from sqlmodel import col, select

from agent.audit.chain import GENESIS_HASH, event_mac, link_hash
from agent.store import AuditEvent, Store

#: The MAC key of trails written directly by tests (not through Services).
TEST_MAC_KEY = bytes(range(32))


def recomputed_hash(row: AuditEvent) -> str:
    """The hash the chain says ``row`` must carry, computed from the stored columns only."""
    return link_hash(row)


def stored_events(store: Store) -> list[AuditEvent]:
    with store.read() as session:
        return list(session.exec(select(AuditEvent).order_by(col(AuditEvent.seq))).all())


def assert_intact_chain(rows: Sequence[AuditEvent], mac_key: bytes | None = None) -> None:
    """seq 1..N without gaps, each event linked to the one before in the trail and in its
    project, every hash recomputable, and (given the key) every MAC made with it."""
    assert [row.seq for row in rows] == list(range(1, len(rows) + 1))
    previous = GENESIS_HASH
    projects: dict[str, tuple[int, str]] = {}
    for row in rows:
        assert row.prev_hash == previous, f"event {row.seq} is not linked to its predecessor"
        assert row.hash == recomputed_hash(row), f"event {row.seq} does not match its hash"
        if mac_key is not None:
            assert row.mac == event_mac(mac_key, row.hash), f"event {row.seq}: wrong MAC"
        if row.project_id is None:
            assert (row.project_seq, row.project_prev_hash) == (None, None)
        else:
            last_seq, last_hash = projects.get(row.project_id, (0, GENESIS_HASH))
            assert row.project_seq == last_seq + 1, f"event {row.seq}: project seq gap"
            assert row.project_prev_hash == last_hash, f"event {row.seq}: project link broken"
            projects[row.project_id] = (row.project_seq, row.hash)
        previous = row.hash
