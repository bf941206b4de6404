"""The store: SQLModel tables on SQLite (default) or PostgreSQL, versioned with Alembic."""

from agent.store.engine import Store, redact_url
from agent.store.tables import AuditCheckpoint, AuditEvent, AuditHead, Member, Project

__all__ = [
    "AuditCheckpoint",
    "AuditEvent",
    "AuditHead",
    "Member",
    "Project",
    "Store",
    "redact_url",
]
