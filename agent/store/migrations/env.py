"""Alembic environment: the engine comes from the caller (agent.store.migrate), never from a
URL in an ini file, so migrations run against exactly the database the daemon opened."""

from alembic import context
from sqlmodel import SQLModel

import agent.store.tables  # noqa: F401  (registers the tables on SQLModel.metadata)

engine = context.config.attributes["engine"]
with engine.begin() as connection:
    context.configure(
        connection=connection,
        target_metadata=SQLModel.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()
