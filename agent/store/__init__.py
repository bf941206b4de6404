"""The store: SQLModel tables on SQLite (default) or PostgreSQL, versioned with Alembic."""

from agent.store.engine import Store, redact_url
from agent.store.tables import AuditEvent, Member, Project

__all__ = ["AuditEvent", "Member", "Project", "Store", "redact_url"]
