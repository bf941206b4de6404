"""The sealer (A5): signed checkpoints over the trail, made from a real store on SQLite and
PostgreSQL with a clock that only moves when told; damage is never signed and is audited once."""

from __future__ import annotations

import dataclasses
import json
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import text
from sqlmodel import col, select

from agent.api.dispatch import Caller, RequestContext
from agent.audit.checkpoint import SignedCheckpoint, parse_checkpoint_document
from agent.audit.keys import key_store_dir, signature_valid
from agent.audit.reanchor import ACCEPT_ACTION, accept_damage
from agent.audit.seal import CHECKPOINT_FILE
from agent.audit.sealer import MAX_BACKOFF_SECONDS, Sealer, seconds_until_due
from agent.audit.sealing import DAMAGE_ACTION, REFUSED_CHECKPOINT, check_at_start, seal
from agent.audit.trail import add_commit_listener, remove_commit_listener
from agent.clock import FakeClock
from agent.errors import InvalidRequest
from agent.services import Services
from agent.store import AuditCheckpoint, AuditEvent
from tests.audit.chain_check import assert_intact_chain, stored_events

ALICE = Caller(uid=1001, gid=1001, pid=4242, name="alice")
DEADLINE = 20.0


def record(services: Services, count: int = 1, *, project: str | None = "p1") -> None:
    for _ in range(count):
        with services.store.write() as session:
            RequestContext(ALICE, services).audit(session, "test.event", project=project,
                                                  target="cohort.csv")


def stored_checkpoints(services: Services) -> list[AuditCheckpoint]:
    with services.store.read() as session:
        return list(session.exec(select(AuditCheckpoint).order_by(col(AuditCheckpoint.id))).all())


def kept_file(services: Services) -> SignedCheckpoint:
    path = key_store_dir(services.config.key_store) / CHECKPOINT_FILE
    return parse_checkpoint_document(path.read_bytes())


def damage_events(services: Services) -> list[AuditEvent]:
    return [e for e in stored_events(services.store) if e.action == DAMAGE_ACTION]


def tamper(services: Services, sql: str, **params: Any) -> None:
    with services.store.engine.begin() as connection:
        connection.execute(text(sql), params)


def with_audit_policy(services: Services, **changes: int) -> None:
    policy = services.policies.current()
    services.policies.replace(
        dataclasses.replace(policy, audit=dataclasses.replace(policy.audit, **changes)))


def wait_for(condition: Any) -> None:
    """Until ``condition()`` holds; the deadline only keeps a broken sealer from hanging."""
    deadline = time.monotonic() + DEADLINE
    while not condition():
        assert time.monotonic() < deadline, "the sealer did not get there"
        time.sleep(0.02)


@pytest.fixture
def sealer(services: Services) -> Iterator[Sealer]:
    running = Sealer(services)
    yield running
    running.stop()


def test_a5_a_seal_signs_the_heads_and_keeps_a_copy_in_the_key_store(
    services: Services, fake_clock: FakeClock
) -> None:
    record(services, 3)
    record(services, 1, project="p2")
    result = seal(services)
    assert result.made is not None and result.damage is None
    made = result.made.checkpoint
    assert (made.trail.seq, made.time, made.key_id) == (4, fake_clock.now(),
                                                         services.audit_keys.key_id)
    rows = stored_events(services.store)
    assert made.trail.head == rows[-1].hash
    assert {name: head.seq for name, head in made.projects.items()} == {"p1": 3, "p2": 1}
    assert signature_valid(services.audit_keys.public_key, result.made.signature,
                           result.made.payload.encode("ascii"))
    [stored] = stored_checkpoints(services)
    assert (stored.seq, stored.payload) == (4, result.made.payload)
    assert kept_file(services) == result.made


def test_a5_each_checkpoint_extends_the_last_and_nothing_new_signs_nothing(
    services: Services, fake_clock: FakeClock
) -> None:
    record(services, 2)
    first = seal(services).made
    assert seal(services).made is None  # nothing moved
    fake_clock.advance(timedelta(seconds=1))
    record(services, 2)
    second = seal(services)
    assert first is not None and second.made is not None
    assert second.made.checkpoint.trail.seq == 4
    assert second.made.checkpoint.projects["p1"].seq == 4
    assert [c.seq for c in stored_checkpoints(services)] == [2, 4]
    assert kept_file(services) == second.made == second.latest


def test_a5_a_changed_event_is_not_signed_but_audited_once(services: Services) -> None:
    record(services, 2)
    assert seal(services).made is not None
    record(services, 2)
    tamper(services, "UPDATE audit_event SET target = 'other.csv' WHERE seq = 3")
    first = seal(services)
    assert first.made is None and first.recorded
    assert first.damage is not None and (first.damage.kind, first.damage.seq) == ("changed", 3)
    again = seal(services)
    assert again.made is None and again.damage == first.damage and not again.recorded
    [event] = damage_events(services)
    details = json.loads(event.details)
    assert (event.outcome, event.rule, event.actor) == ("violation", "A5", "vokterd")
    assert (details["kind"], details["seq"], details["found"]) == ("changed", 3, "sealing")
    assert "event 3" in details["message"]
    assert [c.seq for c in stored_checkpoints(services)] == [2]
    assert kept_file(services).checkpoint.trail.seq == 2
    assert again.latest is not None and again.latest.checkpoint.trail.seq == 2


def test_a5_sealing_resumes_once_the_damage_is_undone_and_covers_its_record(
    services: Services,
) -> None:
    record(services, 2)
    seal(services)
    record(services, 1)
    tamper(services, "UPDATE audit_event SET target = 'other.csv' WHERE seq = 3")
    assert seal(services).damage is not None
    tamper(services, "UPDATE audit_event SET target = 'cohort.csv' WHERE seq = 3")
    resumed = seal(services)
    assert resumed.damage is None and resumed.made is not None
    assert resumed.made.checkpoint.trail.seq == 4  # the damage event is sealed too
    assert_intact_chain(stored_events(services.store), services.audit_keys.mac_key)


def test_a5_a_damage_that_comes_back_after_sealing_resumed_is_recorded_again(
    services: Services, fake_clock: FakeClock
) -> None:
    record(services, 3)
    seal(services)
    record(services, 1)
    tamper(services, "UPDATE audit_event SET target = 'x' WHERE seq = 4")
    assert seal(services).recorded
    tamper(services, "UPDATE audit_event SET target = 'cohort.csv' WHERE seq = 4")
    assert seal(services).made is not None
    fake_clock.advance(timedelta(seconds=5))
    record(services, 1)
    tamper(services, "UPDATE audit_event SET actor = 'mallory' WHERE seq = 6")
    assert seal(services).recorded
    assert [json.loads(e.details)["seq"] for e in damage_events(services)] == [4, 6]


def test_a5_a_tampered_key_store_checkpoint_is_refused_not_extended(services: Services) -> None:
    record(services, 2)
    seal(services)
    path = key_store_dir(services.config.key_store) / CHECKPOINT_FILE
    document = json.loads(path.read_text())
    document["payload"] = document["payload"].replace('"seq":2', '"seq":1')
    path.write_text(json.dumps(document))
    record(services, 1)
    result = seal(services)
    assert result.made is None and result.damage is not None
    assert result.damage.kind == REFUSED_CHECKPOINT and result.damage.seq is None
    assert "not signed by this trail's key" in result.damage.message
    assert json.loads(path.read_text()) == document  # the evidence is left as it was
    assert [c.seq for c in stored_checkpoints(services)] == [2]
    [event] = damage_events(services)
    assert json.loads(event.details)["kind"] == REFUSED_CHECKPOINT


def test_a5_stored_checkpoints_not_signed_by_our_key_are_passed_over(services: Services) -> None:
    record(services, 2)
    first = seal(services).made
    assert first is not None
    (key_store_dir(services.config.key_store) / CHECKPOINT_FILE).unlink()
    forged = first.payload.replace('"seq":2', '"seq":1')
    with services.store.write() as session:
        session.add(AuditCheckpoint(time=first.checkpoint.time, seq=1, head="00" * 32,
                                    key_id=first.checkpoint.key_id, payload=forged,
                                    signature=first.document()["signature"]))
    record(services, 1)
    result = seal(services)
    assert result.damage is None and result.made is not None
    assert result.made.checkpoint.trail.seq == 3  # extended from the genuine one
    assert kept_file(services) == result.made


def test_a5_a_cut_tail_is_found_at_start_and_sealing_stays_stopped(services: Services) -> None:
    record(services, 4)
    seal(services)
    tamper(services, "DELETE FROM audit_event WHERE seq > 2")
    tamper(services, "UPDATE audit_head SET seq = 2, hash = "
                     "(SELECT hash FROM audit_event WHERE seq = 2) WHERE chain = ''")
    tamper(services, "DELETE FROM audit_checkpoint")  # the database's copy is cut too
    damage = check_at_start(services)
    assert damage is not None and (damage.kind, damage.seq) == ("tail_cut", 4)
    assert "cut off" in damage.what
    [event] = damage_events(services)
    assert json.loads(event.details)["found"] == "start"
    later = seal(services)
    assert later.made is None and later.damage == damage and not later.recorded
    assert stored_checkpoints(services) == []


def test_a5_a_start_on_a_sound_trail_records_nothing(services: Services) -> None:
    record(services, 2)
    seal(services)
    assert check_at_start(services) is None
    assert damage_events(services) == []


def test_a5_accepted_damage_is_recorded_and_sealing_goes_on_from_the_trail_as_it_stands(
    services: Services, fake_clock: FakeClock
) -> None:
    record(services, 2)
    record(services, 1, project="p2")
    first = seal(services).made
    record(services, 2)
    tamper(services, "DELETE FROM audit_event WHERE seq = 4")
    assert seal(services).damage is not None
    fake_clock.advance(timedelta(seconds=1))
    root = Caller(uid=0, gid=0, pid=1, name="root")
    result = accept_damage(services, root, "event 4 lost with a disk; incident 2026-114")
    assert result.damage is not None and result.damage.kind == "deleted"
    rows = stored_events(services.store)
    [accepted] = [e for e in rows if e.action == ACCEPT_ACTION]
    assert (accepted.actor, accepted.rule, accepted.seq) == ("root", "A5", rows[-1].seq)
    assert json.loads(accepted.details)["reason"].startswith("event 4 lost")
    made = result.made
    assert made is not None and kept_file(services) == made
    assert (made.checkpoint.trail.seq, made.checkpoint.trail.head) == (rows[-1].seq,
                                                                         rows[-1].hash)
    newest_p1 = max((e for e in rows if e.project_id == "p1"), key=lambda e: e.project_seq or 0)
    assert made.checkpoint.projects["p1"].head == newest_p1.hash
    assert made.checkpoint.projects["p2"].seq == 1
    evidence = list(key_store_dir(services.config.key_store).glob("checkpoint-replaced-*.json"))
    assert first is not None and len(evidence) == 1
    assert parse_checkpoint_document(evidence[0].read_bytes()) == first
    record(services, 1)
    goes_on = seal(services)
    assert goes_on.damage is None and goes_on.made is not None
    with pytest.raises(InvalidRequest, match="no damage to accept"):
        accept_damage(services, root, "again")


def test_a5_the_sealer_seals_after_checkpoint_events_without_waiting_for_the_clock(
    services: Services, sealer: Sealer
) -> None:
    with_audit_policy(services, checkpoint_seconds=3600, checkpoint_events=5)
    sealer.start()
    record(services, 5)
    wait_for(lambda: any(c.seq >= 5 for c in stored_checkpoints(services)))
    record(services, 2)
    final = sealer.stop()
    assert final is not None and final.made is not None
    assert final.made.checkpoint.trail.seq == 7
    assert kept_file(services) == final.made
    newest = stored_checkpoints(services)[-1]
    assert newest.payload == final.made.payload


def test_a5_the_sealer_seals_when_the_interval_passed_and_the_policy_sets_it(
    services: Services, fake_clock: FakeClock, sealer: Sealer
) -> None:
    with_audit_policy(services, checkpoint_seconds=3600, checkpoint_events=1000)
    sealer.start()
    record(services, 1)
    with_audit_policy(services, checkpoint_seconds=2, checkpoint_events=1000)  # a reload
    fake_clock.advance(timedelta(seconds=2))
    sealer.wake()
    wait_for(lambda: [c.seq for c in stored_checkpoints(services)] == [1])


def test_a5_a_database_error_does_not_end_sealing(services: Services, sealer: Sealer) -> None:
    record(services, 1)
    tamper(services, "ALTER TABLE audit_checkpoint RENAME TO audit_checkpoint_away")
    try:
        assert sealer.tick(force=True) is None  # failed, logged, not raised
    finally:
        tamper(services, "ALTER TABLE audit_checkpoint_away RENAME TO audit_checkpoint")
    retried = sealer.tick()
    assert retried is not None and retried.made is not None
    assert retried.made.checkpoint.trail.seq == 1


def test_a5_the_sealer_thread_survives_damage_and_database_errors(
    services: Services, fake_clock: FakeClock, sealer: Sealer
) -> None:
    record(services, 2)
    sealer.start()
    assert sealer.tick() is not None
    record(services, 1)
    tamper(services, "UPDATE audit_event SET target = 'x' WHERE seq = 3")
    fake_clock.advance(timedelta(seconds=1))
    sealer.wake()
    wait_for(lambda: len(damage_events(services)) == 1)
    tamper(services, "UPDATE audit_event SET target = 'cohort.csv' WHERE seq = 3")
    fake_clock.advance(timedelta(seconds=MAX_BACKOFF_SECONDS))
    sealer.wake()
    wait_for(lambda: stored_checkpoints(services)[-1].seq == 4)  # the damage event sealed too
    final = sealer.stop()
    assert final is not None and final.damage is None
    assert len(damage_events(services)) == 1


def test_commit_listeners_hear_only_committed_events(services: Services) -> None:
    heard: list[int] = []

    def listen(rows: Sequence[Mapping[str, Any]]) -> None:
        heard.extend(int(row["seq"]) for row in rows)

    add_commit_listener(listen)
    try:
        record(services, 2)
        with pytest.raises(RuntimeError), services.store.write() as session:
            RequestContext(ALICE, services).audit(session, "test.event")
            raise RuntimeError("the action failed; its event is rolled back")
        record(services, 1)
    finally:
        remove_commit_listener(listen)
    assert heard == [1, 2, 3]


def test_a5_two_sealers_on_one_database_take_turns(services: Services) -> None:
    record(services, 1)
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for _ in range(10):
                record(services, 1)
                result = seal(services)
                assert result.damage is None
        except BaseException as error:  # surfaced below
            errors.append(error)

    threads = [threading.Thread(target=work) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    checkpoints = stored_checkpoints(services)
    assert [c.seq for c in checkpoints] == sorted({c.seq for c in checkpoints})
    assert checkpoints[-1].seq == 21
    assert kept_file(services).checkpoint.trail.seq == 21


@pytest.mark.parametrize(
    ("since_last", "committed", "damaged", "expected"),
    [
        (0.0, 0, 0, 1.0),
        (0.4, 3, 0, 0.6),
        (1.5, 0, 0, 0.0),
        (0.0, 1000, 0, 0.0),  # enough events: now
        (0.0, 1000, 1, 2.0),  # damage: slower, whatever was committed
        (1.0, 0, 3, 7.0),
        (0.0, 0, 30, MAX_BACKOFF_SECONDS),
    ],
)
def test_a5_when_the_next_seal_is_due(since_last: float, committed: int, damaged: int,
                                      expected: float) -> None:
    assert seconds_until_due(since_last=since_last, committed=committed, checkpoint_seconds=1,
                             checkpoint_events=1000, damaged_attempts=damaged) == expected
