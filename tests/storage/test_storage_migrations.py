"""Migrations: up/down/up, no drift from the models, refusing newer or damaged databases, backups."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect

from storage import (
    HEAD,
    Database,
    DatabaseCorrupt,
    KitRepo,
    SchemaTooNew,
    StorageError,
    current_revision,
    make_engine,
    upgrade_to_head,
)
from storage.migrate import _migration_connection, alembic_config, check_integrity, downgrade
from storage.models import Base

MODEL_TABLES = set(Base.metadata.tables)


def _tables(db_path: Path) -> set[str]:
    with sqlite3.connect(db_path) as connection:
        rows = connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
    return {name for (name,) in rows}


def _db_files(db_path: Path) -> dict[str, bytes]:
    """The database file and any -wal/-shm companions that exist, by name."""
    return {p.name: p.read_bytes() for p in db_path.parent.glob(db_path.name + "*") if p.is_file()}


def _migrated_file(db_url: str, kits: int = 0) -> None:
    database = Database.open(db_url, backup_dir=None)
    with database.session() as session:
        repo = KitRepo(session)
        for i in range(kits):
            repo.create(f"kit-{i}", f"Kit {i}", f"tok1_{i}", "bottle", "x" * 200)
    database.dispose()  # checkpoints the WAL into the main file


def test_head_constant_matches_the_scripts() -> None:
    script = ScriptDirectory.from_config(alembic_config())
    assert script.get_current_head() == HEAD


def test_upgrade_downgrade_upgrade_on_empty_db(db_url: str, db_path: Path, tmp_path: Path) -> None:
    engine = make_engine(db_url)
    try:
        report = upgrade_to_head(engine, tmp_path / "backups")
        assert (report.from_revision, report.to_revision, report.backup_path) == (None, HEAD, None)
        assert MODEL_TABLES <= _tables(db_path)
        assert current_revision(engine) == HEAD

        downgrade(engine, "base")
        assert current_revision(engine) is None
        assert _tables(db_path) & MODEL_TABLES == set()
        with engine.connect() as connection:
            assert inspect(connection).get_indexes("alembic_version") == []

        upgrade_to_head(engine, None)
        assert MODEL_TABLES <= _tables(db_path)
        assert current_revision(engine) == HEAD
    finally:
        engine.dispose()


def test_models_and_migrations_do_not_drift(db: Database) -> None:
    with db.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert compare_metadata(context, Base.metadata) == []


def test_drift_check_can_fail(db: Database) -> None:
    """The no-drift assertion above is meaningful: a missing index is reported."""
    with db.engine.begin() as connection:
        connection.exec_driver_sql("DROP INDEX ix_generations_kit_id")
    with db.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        diff = compare_metadata(context, Base.metadata)
    assert [entry[0] for entry in diff] == ["add_index"]


def test_at_head_is_a_noop_without_backup(db_url: str, tmp_path: Path) -> None:
    _migrated_file(db_url, kits=2)
    backups = tmp_path / "backups"
    database = Database.open(db_url, backup_dir=backups)
    database.dispose()
    assert database.last_migration is not None
    assert database.last_migration.from_revision == HEAD
    assert database.last_migration.backup_path is None
    assert not backups.exists()


def test_unknown_revision_refused_and_file_unchanged(db_url: str, db_path: Path, tmp_path: Path) -> None:
    _migrated_file(db_url, kits=3)
    with sqlite3.connect(db_path) as connection:
        connection.execute("UPDATE alembic_version SET version_num = '9999_from_the_future'")
    before = db_path.read_bytes()

    with pytest.raises(SchemaTooNew, match="9999_from_the_future.*newer than this app.*upgrade Brand Studio"):
        Database.open(db_url, backup_dir=tmp_path / "backups")

    assert db_path.read_bytes() == before
    assert not (tmp_path / "backups").exists()
    engine = make_engine(db_url)
    try:
        assert current_revision(engine) == "9999_from_the_future"
        with pytest.raises(SchemaTooNew):
            downgrade(engine, "base")
    finally:
        engine.dispose()
    assert db_path.read_bytes() == before


def test_older_db_is_backed_up_before_migrating(db_url: str, db_path: Path, tmp_path: Path) -> None:
    engine = make_engine(db_url)
    try:
        upgrade_to_head(engine, None)
        downgrade(engine, "base")
        with engine.begin() as connection:
            connection.exec_driver_sql("CREATE TABLE notes (body TEXT)")
            connection.exec_driver_sql("INSERT INTO notes VALUES ('keep me')")
    finally:
        engine.dispose()

    backups = tmp_path / "backups"
    database = Database.open(db_url, backup_dir=backups)
    database.dispose()

    report = database.last_migration
    assert report is not None and report.from_revision is None and report.to_revision == HEAD
    assert report.backup_path is not None and report.backup_path.parent == backups
    assert report.backup_path.name.startswith("studio-") and report.backup_path.name.endswith("-base.sqlite3")
    assert [p.name for p in backups.iterdir()] == [report.backup_path.name]  # no temp file left
    with sqlite3.connect(report.backup_path) as backup:
        assert backup.execute("SELECT body FROM notes").fetchall() == [("keep me",)]
        assert backup.execute("SELECT count(*) FROM alembic_version").fetchone() == (0,)
        assert backup.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    assert MODEL_TABLES <= _tables(db_path)


def test_default_backup_dir_is_next_to_the_database(db_url: str, db_path: Path) -> None:
    engine = make_engine(db_url)
    with engine.begin() as connection:
        connection.exec_driver_sql("CREATE TABLE legacy (x INTEGER)")
    engine.dispose()
    database = Database.open(db_url)
    database.dispose()
    assert database.backup_dir == db_path.parent / "backups"
    assert database.last_migration is not None and database.last_migration.backup_path is not None
    assert database.last_migration.backup_path.is_file()


def test_failed_migration_rolls_back_completely(db_url: str, db_path: Path) -> None:
    """Transactional DDL: a migration that fails late leaves no half-built schema (bad input 46)."""
    engine = make_engine(db_url)
    with engine.begin() as connection:  # a name clash that makes 0001 fail after most tables exist
        connection.exec_driver_sql("CREATE TABLE legacy (kit_id INTEGER)")
        connection.exec_driver_sql("CREATE INDEX ix_lora_adapters_kit_id ON legacy (kit_id)")
    try:
        with pytest.raises(Exception, match="already exists"):
            upgrade_to_head(engine, None)
        assert _tables(db_path) == {"legacy"}
        assert current_revision(engine) is None
        with engine.connect() as connection:  # the pooled connection enforces foreign keys again
            assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    finally:
        engine.dispose()


def test_tables_without_revision_are_refused(db_url: str, db_path: Path) -> None:
    engine = make_engine(db_url)
    Base.metadata.create_all(engine)  # e.g. someone ran create_all instead of migrating
    engine.dispose()
    with pytest.raises(StorageError, match="no schema revision"):
        Database.open(db_url, backup_dir=None)


def test_garbage_header_is_corrupt_and_untouched(db_url: str, db_path: Path) -> None:
    db_path.parent.mkdir(parents=True)
    db_path.write_bytes(b"this is not an sqlite file, just text\n" * 200)
    before = _db_files(db_path)

    with pytest.raises(DatabaseCorrupt, match="damaged.*backups"):
        Database.open(db_url)

    assert _db_files(db_path) == before


@pytest.mark.parametrize("damage", ["page_header", "cell_pointers"])
def test_flipped_page_bytes_are_corrupt_and_untouched(db_url: str, db_path: Path, damage: str) -> None:
    _migrated_file(db_url, kits=300)
    with sqlite3.connect(db_path) as connection:
        page_size = connection.execute("PRAGMA page_size").fetchone()[0]
        root = connection.execute("SELECT rootpage FROM sqlite_master WHERE name = 'brand_kits'").fetchone()[
            0
        ]
    data = bytearray(db_path.read_bytes())
    page = root - 1 if damage == "page_header" else root  # 0-based page index to damage
    start, stop = (0, 8) if damage == "page_header" else (8, 24)
    for offset in range(page * page_size + start, page * page_size + stop):
        data[offset] ^= 0xFF
    db_path.write_bytes(bytes(data))
    before = _db_files(db_path)

    with pytest.raises(DatabaseCorrupt):
        Database.open(db_url)

    assert _db_files(db_path) == before
    engine = make_engine(db_url)
    with pytest.raises(DatabaseCorrupt):
        check_integrity(engine)
    engine.dispose()


def test_integrity_check_passes_on_healthy_and_missing_files(db_url: str, db_path: Path) -> None:
    engine = make_engine(db_url)
    check_integrity(engine)  # file does not exist yet: nothing to check
    assert not db_path.exists()
    upgrade_to_head(engine, None)
    check_integrity(engine)
    engine.dispose()


def test_migrations_run_without_foreign_key_actions(db: Database) -> None:
    """SQLite's ALTER procedure: FK enforcement off while migrating (a batch table copy would
    otherwise cascade-delete kit assets), back on for the connection afterwards."""
    with _migration_connection(db.engine) as connection:
        raw = connection.connection.driver_connection
        assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 0
    assert raw is not None and raw.execute("PRAGMA foreign_keys").fetchone() == (1,)
