"""Database: the engine plus one-transaction sessions, opened with integrity check and migrations.

``Database.open(url)`` is what the app calls on start-up: it refuses a damaged SQLite file without
writing to it, refuses a schema written by a newer app, backs up an older database, and migrates it.
``with db.session() as s:`` is one transaction: committed when the block ends, rolled back on any
exception, with driver errors mapped to :mod:`storage.errors` types.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from storage.engine import make_engine, sqlite_file, write_engine
from storage.errors import StorageError, translate_db_error
from storage.migrate import MigrationReport, check_integrity, upgrade_to_head

logger = logging.getLogger(__name__)

BACKUP_DIR_NAME = "backups"


class Database:
    """One database (SQLite file or PostgreSQL URL). Thread-safe; create one per process."""

    def __init__(self, url: str, backup_dir: Path | None = None) -> None:
        self.url = url
        self.engine: Engine = make_engine(url)
        db_file = sqlite_file(self.engine)
        if backup_dir is None and db_file is not None:
            backup_dir = db_file.parent / BACKUP_DIR_NAME
        self.backup_dir = backup_dir
        self.last_migration: MigrationReport | None = None
        self._where = str(db_file) if db_file is not None else self.engine.url.render_as_string()
        self._writer = sessionmaker(bind=write_engine(self.engine), expire_on_commit=False)
        self._reader = sessionmaker(bind=self.engine, expire_on_commit=False)

    @classmethod
    def open(cls, url: str, backup_dir: Path | None = None) -> Database:
        """Create the engine, check the file's integrity, then migrate to head (backing up first).

        ``backup_dir`` defaults to a ``backups`` folder next to a SQLite database file.
        """
        database = cls(url, backup_dir)
        try:
            check_integrity(database.engine)
            database.last_migration = upgrade_to_head(database.engine, database.backup_dir)
        except StorageError:
            database.dispose()
            raise
        except Exception as err:
            database.dispose()
            translated = translate_db_error(err, database._where)
            if translated is None:
                raise
            raise translated from err
        report = database.last_migration
        if report.from_revision != report.to_revision:
            logger.info(
                "database migrated %s -> %s (backup: %s)",
                report.from_revision or "empty",
                report.to_revision,
                report.backup_path,
            )
        return database

    @contextmanager
    def session(self, *, write: bool = True) -> Iterator[Session]:
        """One transaction: commit on success, roll back on exception.

        With ``write=True`` (default) SQLite starts it with ``BEGIN IMMEDIATE``, so concurrent
        writers wait (up to the busy timeout) for the lock instead of failing later. Pass
        ``write=False`` for read-only work that should never wait for writers.
        Raises IntegrityViolation, StorageFull, ReadOnlyStorage, DatabaseCorrupt for those faults.
        """
        session = (self._writer if write else self._reader)()
        try:
            yield session
            session.commit()
        except BaseException as err:
            self._rollback(session)
            translated = translate_db_error(err, self._where) if isinstance(err, Exception) else None
            if translated is None:
                raise
            raise translated from err
        finally:
            session.close()

    @staticmethod
    def _rollback(session: Session) -> None:
        try:
            session.rollback()
        except Exception:  # the original error matters more; the connection is discarded on close
            logger.exception("rollback failed")

    def dispose(self) -> None:
        """Close every pooled connection (SQLite then checkpoints the WAL into the main file)."""
        self.engine.dispose()

    def __enter__(self) -> Database:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.dispose()

    def __repr__(self) -> str:
        return f"Database({self._where!r})"
