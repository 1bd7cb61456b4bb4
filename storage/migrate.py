"""Schema migrations on start-up: integrity check, refuse newer schemas, back up, upgrade in one transaction.

SQLite migrations run in a single ``BEGIN IMMEDIATE`` transaction (transactional DDL works because
:mod:`storage.engine` lets SQLAlchemy emit BEGIN), so a migration killed half-way leaves the old
schema. Foreign-key enforcement is switched off for the migration connection, as SQLite's documented
ALTER TABLE procedure requires (a batch "move and copy" would otherwise cascade deletes when it drops
the old table), and ``PRAGMA foreign_key_check`` must pass before the commit.

PostgreSQL migrations run in one transaction too (its DDL is transactional), holding a transaction
advisory lock so workers starting together migrate once. They are not backed up automatically:
:mod:`storage.backups` copies SQLite files; use ``pg_dump`` for PostgreSQL.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, inspect, text
from sqlalchemy.engine import Connection

from storage.backups import backup_sqlite, quick_check
from storage.engine import SQLITE_BEGIN_OPTION, is_sqlite, sqlite_file
from storage.errors import SchemaTooNew, StorageError
from storage.models import Base

logger = logging.getLogger(__name__)

#: The newest schema revision this code knows (tests assert it equals the scripts' head).
HEAD: str = "0007"
MIGRATIONS_DIR = Path(__file__).parent / "migrations"
_PG_MIGRATION_LOCK = 0x4252414E44  # "BRAND": serialises concurrent start-ups on PostgreSQL


@dataclass(frozen=True)
class MigrationReport:
    from_revision: str | None
    to_revision: str
    backup_path: Path | None


def alembic_config(connection: Connection | None = None) -> Config:
    """An Alembic config pointing at the installed migrations folder (no alembic.ini needed)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def known_revisions() -> frozenset[str]:
    script = ScriptDirectory.from_config(alembic_config())
    return frozenset(rev.revision for rev in script.walk_revisions())


def _revision_of(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


def current_revision(engine: Engine) -> str | None:
    """The database's Alembic revision, or None for an empty (never migrated) database."""
    with engine.connect() as connection:
        return _revision_of(connection)


def _check_known(revision: str | None, known: frozenset[str]) -> None:
    if revision is not None and revision not in known:
        raise SchemaTooNew(
            f"database schema {revision} is newer than this app (it knows up to {HEAD}); upgrade "
            "Brand Studio to the version that wrote this database, or restore a backup made by "
            "this version. The database was not changed"
        )


def _check_not_foreign(connection: Connection, revision: str | None) -> None:
    if revision is not None:
        return
    ours = set(Base.metadata.tables) & set(inspect(connection).get_table_names())
    if ours:
        raise StorageError(
            f"database has Brand Studio tables ({', '.join(sorted(ours))}) but no schema revision, so "
            "it cannot be migrated safely; point Brand Studio at a fresh database file or restore a "
            "backup"
        )


def upgrade_to_head(engine: Engine, backup_dir: Path | None) -> MigrationReport:
    """Bring the schema to :data:`HEAD`, backing up a non-empty SQLite file first.

    Other backends (PostgreSQL) are not backed up here: a warning says to use their own tool
    (``pg_dump``). Concurrent start-ups on PostgreSQL queue on an advisory lock; the first migrates.

    Raises SchemaTooNew (database untouched) when the database was migrated by a newer app.
    """
    known = known_revisions()
    with engine.connect() as connection:  # cheap read-only look first: at head means no lock at all
        before = _revision_of(connection)
    _check_known(before, known)
    if before == HEAD:
        return MigrationReport(from_revision=HEAD, to_revision=HEAD, backup_path=None)

    backup_path: Path | None = None
    with _migration_connection(engine) as connection:
        before = _revision_of(connection)  # re-read under the write lock: another process may have won
        _check_known(before, known)
        if before == HEAD:
            return MigrationReport(from_revision=HEAD, to_revision=HEAD, backup_path=None)
        _check_not_foreign(connection, before)
        path = sqlite_file(engine)
        if path is not None and backup_dir is not None and _has_tables(connection):
            backup_path = backup_sqlite(path, backup_dir, before)
        elif path is not None and backup_dir is None:
            logger.warning("migrating %s without a backup (no backup_dir given)", path)
        elif path is None and not is_sqlite(engine) and before is not None:
            logger.warning(
                "migrating %s database %s from %s without an automatic backup (backups are SQLite file "
                "copies); back it up yourself first, e.g. pg_dump --format=custom",
                connection.dialect.name,
                engine.url.render_as_string(hide_password=True),
                before,
            )
        logger.info("migrating database schema %s -> %s", before or "base", HEAD)
        command.upgrade(alembic_config(connection), "head")
    return MigrationReport(from_revision=before, to_revision=HEAD, backup_path=backup_path)


def downgrade(engine: Engine, revision: str) -> None:
    """Migrate down to ``revision`` ("base" drops everything). Used by tests and manual rollbacks."""
    with _migration_connection(engine) as connection:
        _check_known(_revision_of(connection), known_revisions())
        command.downgrade(alembic_config(connection), revision)


def _has_tables(connection: Connection) -> bool:
    return bool(inspect(connection).get_table_names())


@contextmanager
def _migration_connection(engine: Engine) -> Iterator[Connection]:
    """One connection in one write transaction, committed only if the whole block succeeds."""
    if not is_sqlite(engine):
        with engine.begin() as connection:
            if connection.dialect.name == "postgresql":
                connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_MIGRATION_LOCK})
            yield connection
        return
    with engine.connect() as connection:
        raw = connection.connection.driver_connection
        if raw is None:
            raise StorageError("the database connection is closed; retry")
        raw.execute("PRAGMA foreign_keys=OFF")  # outside any transaction, where SQLite honours it
        try:
            connection.execution_options(**{SQLITE_BEGIN_OPTION: "IMMEDIATE"})
            with connection.begin():
                yield connection
                _check_foreign_keys(connection)
        finally:
            try:
                raw.execute("PRAGMA foreign_keys=ON")
            except sqlite3.Error:  # never hand a connection without FK enforcement back to the pool
                connection.invalidate()


def _check_foreign_keys(connection: Connection) -> None:
    problems = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
    if problems:
        raise StorageError(
            f"migration left {len(problems)} rows pointing at missing rows (first: {tuple(problems[0])}); "
            "it was rolled back — report this with the database file"
        )


def check_integrity(engine: Engine) -> None:
    """Run ``PRAGMA quick_check`` on a SQLite file through a read-only connection.

    Raises DatabaseCorrupt when the file is damaged or not a database; the file is never written.
    No-op for in-memory databases, files that do not exist yet, and other backends.
    """
    path = sqlite_file(engine)
    if path is None or not path.exists() or path.stat().st_size == 0:
        return
    quick_check(path)
