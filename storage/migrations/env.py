"""Alembic environment: runs on the connection that :mod:`storage.migrate` passes in.

``storage.migrate`` opens the connection, begins the (single) transaction, and commits or rolls it
back; this script only configures the migration context on it. There is no offline/SQL mode and no
URL handling here: the caller owns the engine.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from storage.models import Base

target_metadata = Base.metadata


def run_migrations_online() -> None:
    connection = context.config.attributes.get("connection")
    if not isinstance(connection, Connection):
        raise RuntimeError(
            "storage migrations run through storage.migrate (upgrade_to_head/downgrade), which passes "
            "an open connection in config.attributes['connection']; do not call alembic directly"
        )
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        transactional_ddl=True,
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    raise RuntimeError("offline (--sql) migrations are not supported; run storage.migrate.upgrade_to_head")
run_migrations_online()
