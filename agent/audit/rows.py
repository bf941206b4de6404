"""Reading stored events as the verifier's plain tuples (``agent.audit.verify.COLUMNS``),
in chunks, so that a million events pass through in constant memory.

The chains (``trail_rows``, ``project_rows``) are read with the database's own cursor and the
time turned into its canonical text by the database, because at a million events the ORM's
per-row work costs more than verifying them. The conversion is exact: a SQLite time stored in
any spelling but the one Vokter writes comes out as text no canonical time has (it starts with
``!``), so its hash cannot match. ``stream`` keeps the ORM path for filtered selections.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from sqlalchemy import Select, select, text
from sqlmodel import Session, col

from agent.audit.chain import format_time
from agent.audit.verify import COLUMNS
from agent.store.tables import AuditEvent

CHUNK = 5000
_TIME = COLUMNS.index("time")

#: The time as ``agent.audit.chain.format_time`` spells it, computed by each database.
_CANONICAL_TIME = {
    # SQLAlchemy stores 'YYYY-MM-DD HH:MM:SS.ffffff' (naive UTC) in SQLite.
    "sqlite": (
        "CASE WHEN typeof(\"time\") = 'text' AND length(\"time\") = 26 "
        "AND substr(\"time\", 11, 1) = ' ' "
        "THEN substr(\"time\", 1, 10) || 'T' || substr(\"time\", 12) || 'Z' "
        "ELSE '!' || \"time\" END"
    ),
    "postgresql": "to_char(\"time\", 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')",
}


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


def chain_sql(dialect: str, where: str, order: str) -> str:
    """The query for events in ``COLUMNS`` order with the canonical time; ``where`` and
    ``order`` are fixed text of the callers (values go in as ``:name`` parameters)."""
    time = _CANONICAL_TIME.get(dialect)
    if time is None:
        raise ValueError(f"no canonical time for the {dialect} database")
    columns = ", ".join(time if name == "time" else f'"{name}"' for name in COLUMNS)
    return f"SELECT {columns} FROM audit_event WHERE {where} ORDER BY {order}"  # noqa: S608


def _chain_rows(
    session: Session, where: str, order: str, params: Mapping[str, Any]
) -> Iterator[Any]:
    dialect = session.get_bind().dialect.name
    sql = chain_sql(dialect, where, order)
    connection = session.connection()
    if dialect == "sqlite":
        # The driver's cursor, iterated directly: tuples straight from C, in its read snapshot.
        cursor = connection.connection.driver_connection.cursor()  # type: ignore[union-attr]
        cursor.arraysize = CHUNK
        return iter(cursor.execute(sql, dict(params)))
    result = connection.execute(
        text(sql), dict(params), execution_options={"stream_results": True, "yield_per": CHUNK}
    )
    return iter(result)


def trail_rows(session: Session, *, after_seq: int = 0) -> Iterator[tuple[Any, ...]]:
    """The whole trail from ``after_seq + 1`` on, in sequence order."""
    return _chain_rows(session, '"seq" > :after', '"seq"', {"after": after_seq})


def project_rows(session: Session, project: str) -> Iterator[tuple[Any, ...]]:
    """One project's chain, in its own sequence order."""
    return _chain_rows(session, '"project_id" = :project', '"project_seq"', {"project": project})


def selected_rows(
    session: Session, where: str, params: Mapping[str, Any]
) -> Iterator[tuple[Any, ...]]:
    """The events ``where`` selects (fixed SQL over bound parameters, never a caller's text),
    in sequence order, by the same fast path as the chains (an export)."""
    return _chain_rows(session, where, '"seq"', params)


def event_at(session: Session, seq: int) -> tuple[Any, ...] | None:
    values = session.execute(
        select(*event_columns()).where(col(AuditEvent.seq) == seq)
    ).first()
    return None if values is None else as_row(values)
