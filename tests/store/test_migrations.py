"""Schema migrations: an old database upgrades with its rows intact, the migrated schema is
exactly the models (a model changed without a migration fails here), and upgrading twice is
harmless."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Column, Integer, MetaData, inspect, text
from sqlmodel import SQLModel, col, select

import agent.store.tables  # noqa: F401  (registers the tables on SQLModel.metadata)
from agent.errors import StoreError
from agent.store import AuditEvent, Member, Project, Store
from agent.store.migrate import current_revision, head_revision, upgrade

FIRST_REVISION = "0001"

# Rows as revision 0001 wrote them: naive UTC times, written by raw SQL (not the models).
ROWS_AT_0001 = [
    "INSERT INTO project (id, title, leader, leader_uid, end_date, state, data_root, key_root, "
    "export_root, quarantine_root, policy, created_at, created_by) VALUES ('p42', 'Old study', "
    "'alice', 1001, '2031-01-31', 'active', '/srv/vokter/p42/data', '/srv/vokter/p42/key', "
    "'/srv/vokter/p42/export', '/srv/vokter/p42/quarantine', 'default', "
    "'2026-11-23 12:00:00.250000', 'root')",
    "INSERT INTO member (id, project_id, \"user\", uid, role, granted_by, reason, granted_at) "
    "VALUES (1, 'p42', 'alice', 1001, 'leader', 'root', 'named at creation', "
    "'2026-11-23 12:00:00.250000')",
    "INSERT INTO audit_event (seq, time, actor_uid, actor, action, project_id, target, outcome, "
    "rule, details, hash_alg, prev_hash, hash) VALUES (1, '2026-11-23 12:00:00.250000', 0, "
    "'root', 'project.create', 'p42', 'p42', 'ok', NULL, :details, 'sha256', :prev, :hash)",
]
ROW_VALUES = {"details": '{"pid":1}', "prev": "0" * 64, "hash": "a" * 64}
# The same rows at head: events carry a MAC from revision 0002 on.
ROWS_AT_HEAD = [
    *ROWS_AT_0001[:2],
    ROWS_AT_0001[2].replace("prev_hash, hash)", "prev_hash, hash, mac)").replace(
        ":hash)", ":hash, 'ff')"
    ),
]


@pytest.fixture
def empty_store(database_url: str) -> Iterator[Store]:
    """A database with no schema at all, as on the daemon's first start."""
    store = Store(database_url)
    yield store
    store.close()


def schema_diff(store: Store, metadata: MetaData = SQLModel.metadata) -> list[object]:
    with store.engine.connect() as connection:
        return list(compare_metadata(MigrationContext.configure(connection), metadata))


def test_an_empty_database_has_no_revision_until_upgraded(empty_store: Store) -> None:
    assert current_revision(empty_store.engine) is None
    upgrade(empty_store.engine)
    assert current_revision(empty_store.engine) == head_revision()
    assert {"project", "member", "audit_event"} <= set(
        inspect(empty_store.engine).get_table_names()
    )


def test_rows_written_at_the_first_revision_survive_the_upgrade_to_head(
    empty_store: Store,
) -> None:
    upgrade(empty_store.engine, FIRST_REVISION)
    assert current_revision(empty_store.engine) == FIRST_REVISION
    with empty_store.engine.begin() as connection:
        for statement in ROWS_AT_0001:
            connection.execute(text(statement), ROW_VALUES)

    upgrade(empty_store.engine)

    assert current_revision(empty_store.engine) == head_revision()
    stamp = datetime(2026, 11, 23, 12, 0, 0, 250000, tzinfo=UTC)
    with empty_store.read() as session:
        project = session.get(Project, "p42")
        members = session.exec(select(Member)).all()
        events = session.exec(select(AuditEvent).order_by(col(AuditEvent.seq))).all()
    assert project is not None
    assert (project.title, project.leader, project.leader_uid) == ("Old study", "alice", 1001)
    assert project.end_date == date(2031, 1, 31)
    assert project.created_at == stamp and project.created_at.tzinfo == UTC
    assert [(m.project_id, m.user, m.role, m.granted_at) for m in members] == [
        ("p42", "alice", "leader", stamp)
    ]
    assert [(e.seq, e.action, e.time, e.hash) for e in events] == [
        (1, "project.create", stamp, "a" * 64)
    ]
    # 0002 leaves development-era events unsealed rather than sealing them after the fact.
    assert [(e.mac, e.project_seq, e.project_prev_hash) for e in events] == [("", None, None)]


def test_migrated_schema_matches_the_models_exactly(store: Store) -> None:
    """A model changed without a migration (or a migration without the model) fails here."""
    assert schema_diff(store) == []


def test_the_schema_comparison_notices_a_model_without_a_migration(store: Store) -> None:
    """Guards the test above: it must be able to see a difference on this backend."""
    drifted = MetaData()
    for table in SQLModel.metadata.tables.values():
        table.to_metadata(drifted)
    drifted.tables["member"].append_column(Column("badge_number", Integer, nullable=True))
    diff = schema_diff(store, drifted)
    assert [entry[0] for entry in diff] == ["add_column"]  # type: ignore[index]
    assert diff[0][3].name == "badge_number"  # type: ignore[index]


def test_upgrade_twice_is_harmless(store: Store) -> None:
    """The daemon upgrades at every start; a second start changes nothing and loses nothing."""
    with store.engine.begin() as connection:
        for statement in ROWS_AT_HEAD:
            connection.execute(text(statement), ROW_VALUES)

    upgrade(store.engine)
    upgrade(store.engine, "head")

    assert current_revision(store.engine) == head_revision()
    assert schema_diff(store) == []
    with store.read() as session:
        assert session.get(Project, "p42") is not None
        assert len(session.exec(select(Member)).all()) == 1
        assert len(session.exec(select(AuditEvent)).all()) == 1
    with store.engine.connect() as connection:
        versions = connection.execute(text("SELECT version_num FROM alembic_version")).all()
    assert [tuple(v) for v in versions] == [(head_revision(),)]


def test_a_database_from_a_newer_version_is_a_store_error(store: Store) -> None:
    with store.engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    with pytest.raises(StoreError):
        upgrade(store.engine)
