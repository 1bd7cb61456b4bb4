"""Engine factory: SQLite tuned for one app + worker processes sharing a file; PostgreSQL via psycopg 3.

SQLite connections get WAL, foreign keys, a 15 s busy timeout and ``synchronous=NORMAL`` on every
connect. The sqlite3 driver's own transaction handling is switched off (``isolation_level = None``)
and SQLAlchemy emits ``BEGIN`` itself, so SELECTs and DDL run inside real transactions (transactional
migrations, working SAVEPOINTs). A connection whose execution options carry
``{SQLITE_BEGIN_OPTION: "IMMEDIATE"}`` (see :func:`write_engine`) starts with ``BEGIN IMMEDIATE``:
it takes the write lock up front, so concurrent writers queue on ``busy_timeout`` instead of failing
later with "database is locked" when a read transaction tries to upgrade.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, Connection, make_url

from storage.errors import StorageError

logger = logging.getLogger(__name__)

#: Execution option naming how SQLite should BEGIN: "DEFERRED" (default), "IMMEDIATE" or "EXCLUSIVE".
SQLITE_BEGIN_OPTION = "storage_sqlite_begin"
_BEGIN_MODES = frozenset({"DEFERRED", "IMMEDIATE", "EXCLUSIVE"})

BUSY_TIMEOUT_MS = 15000
_PRAGMAS = (
    ("foreign_keys", "ON"),
    ("busy_timeout", str(BUSY_TIMEOUT_MS)),
    ("synchronous", "NORMAL"),
)


def is_sqlite(engine_or_url: Engine | URL | str) -> bool:
    url = engine_or_url.url if isinstance(engine_or_url, Engine) else make_url(engine_or_url)
    return url.get_backend_name() == "sqlite"


def sqlite_file(engine_or_url: Engine | URL | str) -> Path | None:
    """The database file of a SQLite URL, or None for in-memory databases and other backends."""
    url = engine_or_url.url if isinstance(engine_or_url, Engine) else make_url(engine_or_url)
    if url.get_backend_name() != "sqlite":
        return None
    database = url.database or ""
    if database in ("", ":memory:") or database.startswith("file:") or "mode=memory" in database:
        return None
    return Path(database)


def make_engine(url: str) -> Engine:
    """Create the engine for ``url``; for a SQLite file, create its folder and install the pragmas."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "postgresql":
        return _make_postgres_engine(parsed)
    if parsed.get_backend_name() != "sqlite":
        return create_engine(parsed, pool_pre_ping=True)
    if parsed.get_driver_name() not in ("pysqlite", ""):
        raise ValueError(
            f"unsupported SQLite driver {parsed.get_driver_name()!r}; use a plain 'sqlite:///path' URL"
        )
    path = sqlite_file(parsed)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(parsed)
    _install_sqlite_events(engine)
    return engine


def _make_postgres_engine(parsed: URL) -> Engine:
    """PostgreSQL through psycopg 3 (the ``postgres`` extra); a bare ``postgresql://`` URL means psycopg.

    No pragmas and no BEGIN override: PostgreSQL runs at READ COMMITTED, where the job queue's
    conditional UPDATEs and ``FOR UPDATE SKIP LOCKED`` claims (see :mod:`storage.jobs`) are safe.
    """
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    try:
        return create_engine(parsed, pool_pre_ping=True)
    except ModuleNotFoundError as err:
        raise StorageError(
            f"the PostgreSQL driver for {parsed.drivername!r} is not installed ({err}); install it with "
            "pip install 'brand-studio[postgres]' (psycopg 3), or use a sqlite:/// URL"
        ) from err


def write_engine(engine: Engine) -> Engine:
    """A view of ``engine`` (sharing its pool) whose transactions start with BEGIN IMMEDIATE on SQLite."""
    if not is_sqlite(engine):
        return engine
    return engine.execution_options(**{SQLITE_BEGIN_OPTION: "IMMEDIATE"})


def _install_sqlite_events(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, connection_record: Any) -> None:
        # Take transaction control away from the sqlite3 driver; SQLAlchemy's "begin" emits BEGIN.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            mode = cursor.execute("PRAGMA journal_mode=WAL").fetchone()
            if mode is None or str(mode[0]).lower() not in ("wal", "memory"):
                logger.warning("SQLite refused WAL mode (journal_mode=%s); concurrency will suffer", mode)
            for name, value in _PRAGMAS:
                cursor.execute(f"PRAGMA {name}={value}")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        mode = str(conn.get_execution_options().get(SQLITE_BEGIN_OPTION, "DEFERRED")).upper()
        if mode not in _BEGIN_MODES:
            raise ValueError(f"{SQLITE_BEGIN_OPTION} must be one of {sorted(_BEGIN_MODES)}, not {mode!r}")
        conn.exec_driver_sql(f"BEGIN {mode}")
