"""Schema versions, with Alembic. The daemon upgrades to the newest at start, so an upgrade of
Vokter is: stop, back up, install, start."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from agent.errors import StoreError

MIGRATIONS_DIR = Path(__file__).with_name("migrations")


def alembic_config(engine: Engine) -> AlembicConfig:
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.attributes["engine"] = engine
    return cfg


def head_revision() -> str:
    script = ScriptDirectory(str(MIGRATIONS_DIR))
    head = script.get_current_head()
    assert head is not None
    return head


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


#: Session-level advisory lock held while migrating, so two daemons starting at once on one
#: PostgreSQL database migrate one after the other instead of racing ("VOKTERM" in ASCII).
MIGRATION_LOCK_KEY = 0x564F4B5445524D


def upgrade(engine: Engine, revision: str = "head") -> None:
    try:
        if engine.dialect.name == "postgresql":
            with engine.connect() as holder:
                holder.execute(text("SELECT pg_advisory_lock(:k)"), {"k": MIGRATION_LOCK_KEY})
                try:
                    command.upgrade(alembic_config(engine), revision)
                finally:
                    holder.execute(text("SELECT pg_advisory_unlock(:k)"),
                                   {"k": MIGRATION_LOCK_KEY})
                    holder.commit()
            return
        command.upgrade(alembic_config(engine), revision)
    except SQLAlchemyError as exc:
        raise StoreError(f"schema migration failed: {exc.__class__.__name__}: {exc}") from None
    except CommandError as exc:
        raise StoreError(
            f"the database schema is not one this Vokter knows ({exc})",
            hint="a newer Vokter wrote it: install that version, or restore a matching backup",
        ) from None
