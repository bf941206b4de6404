"""Store.write serialises writers, so concurrent audit appends form one gapless, linked chain
(A5): inside one daemon by its lock, and on PostgreSQL across daemons by the advisory lock."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from agent.audit.chain import EventFields
from agent.audit.trail import append_event
from agent.store import Store
from agent.store.migrate import upgrade
from tests.audit.chain_check import TEST_MAC_KEY, assert_intact_chain, stored_events

THREADS = 8
EVENTS_PER_THREAD = 25
WHEN = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def append_concurrently(stores: list[Store]) -> None:
    """THREADS threads, spread over ``stores``, each appending EVENTS_PER_THREAD events."""
    start = threading.Barrier(THREADS)
    errors: list[BaseException] = []

    def work(worker: int) -> None:
        store = stores[worker % len(stores)]
        try:
            start.wait()
            for n in range(EVENTS_PER_THREAD):
                with store.write() as session:
                    append_event(
                        session,
                        EventFields(
                            time=WHEN, actor_uid=1000 + worker, actor=f"worker{worker}",
                            action="test.append", outcome="ok", details={"n": n},
                            project_id=f"p{worker % 3}",
                        ),
                        mac_key=TEST_MAC_KEY,
                    )
        except BaseException as exc:  # collected and re-raised in the main thread
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads), "a writer hung"
    assert errors == []


def assert_every_append_recorded_once(store: Store) -> None:
    rows = stored_events(store)
    assert len(rows) == THREADS * EVENTS_PER_THREAD
    assert_intact_chain(rows, TEST_MAC_KEY)
    appended = sorted((row.actor, row.details) for row in rows)
    assert appended == sorted(
        (f"worker{w}", f'{{"n":{n}}}') for w in range(THREADS) for n in range(EVENTS_PER_THREAD)
    )


def test_a5_concurrent_appends_through_one_store_form_one_linked_chain(store: Store) -> None:
    append_concurrently([store])
    assert_every_append_recorded_once(store)


@pytest.fixture
def two_daemons(pg_url: str) -> Iterator[list[Store]]:
    """Two Store objects on one PostgreSQL database: two vokterd sharing it."""
    first, second = Store(pg_url), Store(pg_url)
    upgrade(first.engine)
    try:
        yield [first, second]
    finally:
        first.close()
        second.close()


@pytest.mark.postgres
def test_a5_two_stores_sharing_postgresql_append_one_linked_chain(
    two_daemons: list[Store],
) -> None:
    append_concurrently(two_daemons)
    for store in two_daemons:  # both daemons see the same chain
        assert_every_append_recorded_once(store)
