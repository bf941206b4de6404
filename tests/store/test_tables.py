"""Rows go in and come back unchanged on SQLite and PostgreSQL; times are always aware UTC."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy.exc import IntegrityError, StatementError
from sqlmodel import SQLModel, select

from agent.store import AuditEvent, Member, Project, Store

OSLO_SUMMER = timezone(timedelta(hours=2))
CREATED = datetime(2026, 11, 23, 12, 30, 15, 123456, tzinfo=UTC)


def a_project(project_id: str = "p1234", **overrides: Any) -> Project:
    values: dict[str, Any] = {
        "id": project_id,
        "title": "Cohort study of sleep — Æ Ø Å",
        "leader": "alice",
        "leader_uid": 1001,
        "end_date": date(2030, 6, 30),
        "state": "active",
        "data_root": f"/srv/vokter/{project_id}/data",
        "key_root": f"/srv/vokter/{project_id}/key",
        "export_root": f"/srv/vokter/{project_id}/export",
        "quarantine_root": f"/srv/vokter/{project_id}/quarantine",
        "policy": "default",
        "created_at": CREATED,
        "created_by": "root",
    }
    values.update(overrides)
    return Project(**values)


def a_member(project_id: str = "p1234", **overrides: Any) -> Member:
    values: dict[str, Any] = {
        "project_id": project_id,
        "user": "bob",
        "uid": 1002,
        "role": "member",
        "granted_by": "alice",
        "reason": "analyses the sleep diaries",
        "granted_at": CREATED + timedelta(days=1),
        "expires_at": date(2027, 12, 31),
        "revoked_at": CREATED + timedelta(days=30),
        "revoked_by": "alice",
        "revoke_reason": "left the group",
    }
    values.update(overrides)
    return Member(**values)


def an_event(**overrides: Any) -> AuditEvent:
    values: dict[str, Any] = {
        "seq": 1,
        "time": CREATED,
        "actor_uid": 0,
        "actor": "root",
        "action": "project.create",
        "project_id": "p1234",
        "target": "/srv/vokter/p1234",
        "outcome": "ok",
        "rule": "S5",
        "details": '{"leader":"alice"}',
        "hash_alg": "sha512",
        "prev_hash": "0" * 64,
        "hash": "f" * 128,
    }
    values.update(overrides)
    return AuditEvent(**values)


def columns(row: SQLModel) -> dict[str, Any]:
    return {name: getattr(row, name) for name in type(row).model_fields}


def test_project_member_and_event_round_trip(store: Store) -> None:
    project, member, event = a_project(), a_member(), an_event()
    with store.write() as session:
        session.add(project)
        session.flush()
        session.add(member)
        session.add(event)
    assert member.id is not None

    with store.read() as session:
        got_project = session.get(Project, "p1234")
        got_member = session.get(Member, member.id)
        got_event = session.get(AuditEvent, 1)
    assert got_project is not None and got_member is not None and got_event is not None
    assert columns(got_project) == columns(a_project())
    assert columns(got_member) == {**columns(a_member()), "id": member.id}
    assert columns(got_event) == columns(an_event())


def test_unset_optional_columns_come_back_as_none(store: Store) -> None:
    with store.write() as session:
        session.add(a_project())
        session.flush()
        session.add(a_member(expires_at=None, revoked_at=None, revoked_by=None,
                             revoke_reason=None))
        session.add(an_event(project_id=None, target=None, rule=None))
    with store.read() as session:
        member = session.exec(select(Member)).one()
        event = session.exec(select(AuditEvent)).one()
    assert (member.expires_at, member.revoked_at, member.revoked_by) == (None, None, None)
    assert (event.project_id, event.target, event.rule) == (None, None, None)


def test_times_come_back_timezone_aware_utc_whatever_zone_they_were_written_in(
    store: Store,
) -> None:
    written = datetime(2026, 7, 1, 9, 15, 0, 654321, tzinfo=OSLO_SUMMER)
    with store.write() as session:
        session.add(a_project(created_at=written))
        session.flush()
        session.add(a_member(granted_at=written, revoked_at=written + timedelta(hours=1)))
        session.add(an_event(time=written))

    with store.read() as session:
        project = session.exec(select(Project)).one()
        member = session.exec(select(Member)).one()
        event = session.exec(select(AuditEvent)).one()
    for value in (project.created_at, member.granted_at, member.revoked_at, event.time):
        assert value is not None
        assert value.tzinfo == UTC
    assert project.created_at == written
    assert project.created_at.hour == 7  # 09:15 at +02:00 is 07:15 UTC
    assert project.created_at.microsecond == 654321
    assert member.revoked_at == written + timedelta(hours=1)
    assert event.time == written


def test_times_compare_in_queries_as_utc(store: Store) -> None:
    with store.write() as session:
        session.add(an_event(seq=1, time=datetime(2026, 1, 1, 10, 0, tzinfo=UTC)))
        session.add(an_event(seq=2, time=datetime(2026, 1, 1, 12, 0, tzinfo=UTC)))
    # 12:30 at +02:00 is 10:30 UTC: only the 12:00 UTC event is later.
    boundary = datetime(2026, 1, 1, 12, 30, tzinfo=OSLO_SUMMER)
    with store.read() as session:
        later = session.exec(select(AuditEvent.seq).where(AuditEvent.time > boundary)).all()
    assert list(later) == [2]


NAIVE = datetime(2026, 11, 23, 12, 0)


@pytest.mark.parametrize(
    "make_row",
    [
        pytest.param(lambda: a_project(created_at=NAIVE), id="project.created_at"),
        pytest.param(lambda: a_member(granted_at=NAIVE), id="member.granted_at"),
        pytest.param(lambda: a_member(revoked_at=NAIVE), id="member.revoked_at"),
        pytest.param(lambda: an_event(time=NAIVE), id="audit_event.time"),
    ],
)
def test_a_naive_datetime_is_refused_and_nothing_is_written(
    store: Store, make_row: Callable[[], SQLModel]
) -> None:
    refused = make_row()
    if not isinstance(refused, Project):
        with store.write() as session:
            session.add(a_project())
    with store.read() as session:
        before = len(session.exec(select(type(refused))).all())
    with pytest.raises(StatementError, match="naive datetime"), store.write() as session:
        session.add(refused)
    with store.read() as session:
        assert len(session.exec(select(type(refused))).all()) == before


def test_a_naive_datetime_is_refused_in_a_query_too(store: Store) -> None:
    with pytest.raises(StatementError, match="naive datetime"), store.read() as session:
        session.exec(select(AuditEvent).where(AuditEvent.time > NAIVE)).all()


def test_a_member_of_an_unknown_project_is_refused_by_the_foreign_key(store: Store) -> None:
    with pytest.raises(IntegrityError), store.write() as session:
        session.add(a_member(project_id="p9999"))
    with store.read() as session:
        assert session.exec(select(Member)).all() == []


def test_a_member_of_a_known_project_is_accepted(store: Store) -> None:
    with store.write() as session:
        session.add(a_project("p9999"))
        session.flush()
        session.add(a_member(project_id="p9999"))
    with store.read() as session:
        assert [m.project_id for m in session.exec(select(Member)).all()] == ["p9999"]


def test_audit_sequence_numbers_are_unique(store: Store) -> None:
    with store.write() as session:
        session.add(an_event(seq=1))
    with pytest.raises(IntegrityError), store.write() as session:
        session.add(an_event(seq=1, actor="mallory"))
    with store.read() as session:
        assert [e.actor for e in session.exec(select(AuditEvent)).all()] == ["root"]
