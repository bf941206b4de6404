"""Reading stored events as the verifier's plain tuples (``agent.audit.verify.COLUMNS``),
in chunks, so that a million events pass through in constant memory."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from sqlalchemy import Select, select
from sqlmodel import Session, col

from agent.audit.chain import format_time
from agent.audit.verify import COLUMNS
from agent.store.tables import AuditEvent

CHUNK = 5000
_TIME = COLUMNS.index("time")


def event_columns() -> list[Any]:
    return [getattr(AuditEvent, name) for name in COLUMNS]


def as_row(values: Any) -> tuple[Any, ...]:
    """A stored row with its time in the canonical text the hash covers."""
    row = tuple(values)
    return (*row[:_TIME], format_time(row[_TIME]), *row[_TIME + 1:])


def stream(session: Session, query: Select[Any], chunk: int = CHUNK) -> Iterator[tuple[Any, ...]]:
    result = session.execute(query, execution_options={"yield_per": chunk})
    for partition in result.partitions(chunk):
        for values in partition:
            yield as_row(values)


def trail_rows(session: Session, *, after_seq: int = 0) -> Iterator[tuple[Any, ...]]:
    """The whole trail from ``after_seq + 1`` on, in sequence order."""
    query = (select(*event_columns()).where(col(AuditEvent.seq) > after_seq)
             .order_by(col(AuditEvent.seq)))
    return stream(session, query)


def project_rows(session: Session, project: str) -> Iterator[tuple[Any, ...]]:
    """One project's chain, in its own sequence order."""
    query = (select(*event_columns()).where(col(AuditEvent.project_id) == project)
             .order_by(col(AuditEvent.project_seq)))
    return stream(session, query)


def event_at(session: Session, seq: int) -> tuple[Any, ...] | None:
    values = session.execute(
        select(*event_columns()).where(col(AuditEvent.seq) == seq)
    ).first()
    return None if values is None else as_row(values)
