"""append_event (A5): each stored event is linked to the one before and can be re-hashed from
its row alone, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import text
from sqlmodel import select

from agent.audit.chain import GENESIS_HASH, EventFields
from agent.audit.trail import append_event
from agent.errors import AuditUnavailable
from agent.store import AuditEvent, Store
from tests.audit.chain_check import (
    TEST_MAC_KEY,
    assert_intact_chain,
    recomputed_hash,
    stored_events,
)

T0 = datetime(2026, 11, 23, 12, 0, 0, 500000, tzinfo=UTC)

VARIED = [
    EventFields(time=T0, actor_uid=0, actor="vokterd", action="daemon.start", outcome="ok",
                details={"version": "test"}),
    EventFields(time=T0 + timedelta(seconds=1), actor_uid=0, actor="root",
                action="project.create", outcome="ok", project_id="p1234", target="p1234",
                details={"zones": {"data": "/srv/p1234/data"}, "leader": "ålice"}),
    EventFields(time=T0 + timedelta(seconds=2), actor_uid=4242, actor="someone",
                action="project.create", outcome="refused", project_id="p1234",
                rule="S5", details={"error": "PermissionDenied"}),
    EventFields(time=T0 + timedelta(minutes=5), actor_uid=1001, actor="alice",
                action="member.add", outcome="ok", project_id="p1234", target="bob"),
]


def append(store: Store, fields: EventFields, algorithm: str = "sha256") -> AuditEvent:
    with store.write() as session:
        return append_event(session, fields, mac_key=TEST_MAC_KEY, algorithm=algorithm)


def test_a5_first_event_links_to_genesis(store: Store) -> None:
    row = append(store, VARIED[0])
    assert (row.seq, row.prev_hash) == (1, GENESIS_HASH)
    [stored] = stored_events(store)
    assert stored.hash == row.hash == recomputed_hash(stored)


def test_a5_appended_events_form_a_linked_chain_recomputable_from_the_rows(
    store: Store,
) -> None:
    returned = [append(store, fields) for fields in VARIED]
    rows = stored_events(store)
    assert_intact_chain(rows, TEST_MAC_KEY)
    assert [row.hash for row in rows] == [row.hash for row in returned]
    assert [(r.actor, r.action, r.outcome, r.project_id, r.target, r.rule) for r in rows] == [
        (f.actor, f.action, f.outcome, f.project_id, f.target, f.rule) for f in VARIED
    ]
    # canonical: sorted keys, no spaces, ASCII-only
    assert rows[1].details == '{"leader":"\\u00e5lice","zones":{"data":"/srv/p1234/data"}}'
    assert rows[3].details == "{}"


@pytest.mark.parametrize("algorithm", ["sha512", "blake2b"])
def test_a5_longer_hashes_are_stored_whole_and_verify(store: Store, algorithm: str) -> None:
    append(store, VARIED[0], "sha256")
    for fields in VARIED[1:]:
        append(store, fields, algorithm)
    rows = stored_events(store)
    assert_intact_chain(rows)
    assert [len(row.hash) for row in rows] == [64, 128, 128, 128]
    assert [row.hash_alg for row in rows] == ["sha256", algorithm, algorithm, algorithm]


def test_a5_an_edited_event_no_longer_matches_its_hash(store: Store) -> None:
    for fields in VARIED:
        append(store, fields)
    with store.engine.begin() as connection:
        connection.execute(text("UPDATE audit_event SET actor = 'mallory' WHERE seq = 2"))
    rows = stored_events(store)
    assert rows[1].hash != recomputed_hash(rows[1])
    with pytest.raises(AssertionError, match="event 2"):
        assert_intact_chain(rows)


def test_a5_a_deleted_event_breaks_the_link_of_the_next(store: Store) -> None:
    for fields in VARIED:
        append(store, fields)
    with store.engine.begin() as connection:
        connection.execute(text("DELETE FROM audit_event WHERE seq = 4"))
        connection.execute(text("DELETE FROM audit_event WHERE seq = 2"))
        connection.execute(text("UPDATE audit_event SET seq = 2 WHERE seq = 3"))
    rows = stored_events(store)
    assert rows[1].prev_hash != rows[0].hash


def test_an_unwritable_event_raises_audit_unavailable_and_nothing_is_stored(
    store: Store,
) -> None:
    naive = EventFields(time=datetime(2026, 11, 23, 12, 0), actor_uid=0, actor="root",
                        action="x", outcome="ok")
    with pytest.raises(AuditUnavailable, match="nothing was changed"), store.write() as session:
        append_event(session, naive, mac_key=TEST_MAC_KEY)
    assert stored_events(store) == []


def test_an_unsupported_algorithm_writes_nothing(store: Store) -> None:
    with pytest.raises(ValueError, match="unsupported"), store.write() as session:
        append_event(session, VARIED[0], mac_key=TEST_MAC_KEY, algorithm="md5")
    assert stored_events(store) == []


def test_a5_an_event_timed_outside_utc_verifies_from_its_stored_row(store: Store) -> None:
    oslo = timezone(timedelta(hours=2))
    append(store, EventFields(time=datetime(2026, 7, 1, 14, 0, tzinfo=oslo), actor_uid=0,
                              actor="root", action="x", outcome="ok"))
    assert_intact_chain(stored_events(store))


def test_append_continues_from_the_newest_stored_event(store: Store) -> None:
    append(store, VARIED[0])
    with store.read() as session:
        head = session.exec(select(AuditEvent)).one()
    second = append(store, VARIED[1])
    assert (second.seq, second.prev_hash) == (2, head.hash)
