"""Engine pragmas, one-transaction sessions, error translation and concurrent writers."""

from __future__ import annotations

import sqlite3
import threading
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import func, select, text

from storage import (
    AssetRepo,
    BlobRef,
    BlobRepo,
    Database,
    IntegrityViolation,
    KitRepo,
    ReadOnlyStorage,
    StorageFull,
    make_engine,
)
from storage.models import BrandKit, Job, KitAsset

SHA = "a" * 64


def _count(db: Database, model: type[object]) -> int:
    with db.session(write=False) as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


def test_make_engine_creates_the_folder_and_sets_pragmas(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "deeper" / "app.sqlite3"
    engine = make_engine(f"sqlite:///{path}")
    try:
        assert path.parent.is_dir()
        with engine.connect() as connection:
            pragma = lambda name: connection.exec_driver_sql(f"PRAGMA {name}").scalar()  # noqa: E731
            assert pragma("journal_mode") == "wal"
            assert pragma("foreign_keys") == 1
            assert pragma("busy_timeout") == 15000
            assert pragma("synchronous") == 1  # NORMAL
    finally:
        engine.dispose()


def test_pragmas_hold_on_every_pooled_connection(db: Database) -> None:
    connections = [db.engine.connect() for _ in range(3)]
    try:
        for connection in connections:
            assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    finally:
        for connection in connections:
            connection.close()


def test_write_session_takes_the_write_lock_up_front(db: Database, db_path: Path) -> None:
    other = sqlite3.connect(db_path, timeout=0, isolation_level=None)
    try:
        with db.session() as session:
            session.execute(select(1))  # a read, yet BEGIN IMMEDIATE already holds the write lock
            with pytest.raises(sqlite3.OperationalError, match="locked"):
                other.execute("BEGIN IMMEDIATE")
        with db.session(write=False) as session:
            session.execute(select(1))  # deferred: readers never block writers
            other.execute("BEGIN IMMEDIATE")
            other.execute("ROLLBACK")
    finally:
        other.close()


def test_ddl_is_transactional(db: Database, db_path: Path) -> None:
    with pytest.raises(RuntimeError), db.session() as session:
        session.execute(text("CREATE TABLE scratch (x INTEGER)"))
        raise RuntimeError("abort")
    with sqlite3.connect(db_path) as connection:
        assert connection.execute("SELECT name FROM sqlite_master WHERE name = 'scratch'").fetchall() == []


def test_commit_and_objects_readable_after_session(db: Database) -> None:
    with db.session() as session:
        kit = KitRepo(session).create("acme", "Acme", "acmebrand", "bottle")
    assert kit.id > 0 and kit.name == "Acme"  # expire_on_commit=False
    assert kit.created_at.tzinfo is not None and kit.created_at.utcoffset() == timedelta(0)
    with db.session(write=False) as session:
        loaded = KitRepo(session).get(kit.id)
    assert loaded is not None and loaded.slug == "acme"
    assert loaded.created_at == kit.created_at  # aware UTC round trip through SQLite
    assert loaded.assets == []  # loaded eagerly, readable after the session


def test_timestamps_are_stored_as_utc_and_naive_ones_refused(db: Database) -> None:
    plus_two = datetime(2024, 5, 1, 14, 0, tzinfo=timezone(timedelta(hours=2)))
    with db.session() as session:
        job = Job(kind="x", payload={}, lease_expires_at=plus_two)
        session.add(job)
    with db.session(write=False) as session:
        stored = session.get(Job, job.id)
        assert stored is not None
        assert stored.lease_expires_at == datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
        assert stored.lease_expires_at.tzinfo == UTC
    with pytest.raises(Exception, match="naive datetime"), db.session() as session:
        session.add(Job(kind="x", payload={}, lease_expires_at=datetime(2024, 5, 1, 12, 0)))
    assert _count(db, Job) == 1


def test_exception_rolls_back_everything_and_propagates(db: Database) -> None:
    with pytest.raises(ValueError, match="user cancelled"), db.session() as session:
        KitRepo(session).create("acme", "Acme", "acmebrand", "bottle")
        raise ValueError("user cancelled")
    assert _count(db, BrandKit) == 0


def test_unique_slug_is_integrity_violation_and_nothing_written(db: Database, kit: BrandKit) -> None:
    with pytest.raises(IntegrityViolation, match=r"brand_kits\.slug already exists"), db.session() as session:
        KitRepo(session).create("other", "Other", "tok7", "cup")
        KitRepo(session).create("acme", "Acme again", "tok8", "cup")
    with db.session(write=False) as session:
        assert [k.slug for k in KitRepo(session).list()] == ["acme"]


def test_foreign_key_violation_is_integrity_violation(db: Database, kit: BrandKit) -> None:
    with pytest.raises(IntegrityViolation, match="refers to a row that does not exist"), db.session() as s:
        BlobRepo(s).record(BlobRef(SHA, 3), "image/png")
        AssetRepo(s).add(kit.id, "b" * 64, "photo", "missing.png", 10, 10)  # no such blob row
    assert _count(db, KitAsset) == 0
    with db.session(write=False) as session:
        assert BlobRepo(session).get(SHA) is None  # the blob row of the same transaction rolled back


def test_check_constraint_is_integrity_violation(db: Database, kit: BrandKit) -> None:
    with pytest.raises(IntegrityViolation, match="ck_kit_assets_kind"), db.session() as session:
        BlobRepo(session).record(BlobRef(SHA, 3), "image/png")
        AssetRepo(session).add(kit.id, SHA, "video", "clip.mp4", 10, 10)  # type: ignore[arg-type]
    assert _count(db, KitAsset) == 0


def test_database_full_is_storage_full_and_rolled_back(db: Database, kit: BrandKit, db_url: str) -> None:
    with pytest.raises(StorageFull, match="storage full"), db.session() as session:
        pages = session.execute(text("PRAGMA page_count")).scalar_one()
        session.execute(text(f"PRAGMA max_page_count = {pages + 2}"))  # a "disk" with 2 pages free
        repo = KitRepo(session)
        for i in range(50):
            repo.create(f"big-{i}", "Big", f"tok9_{i}", "cup", "x" * 4000)
    db.dispose()  # drop the connection with the artificial limit: "space was freed"
    with db.session(write=False) as session:
        assert [k.slug for k in KitRepo(session).list()] == ["acme"]
    with db.session() as session:  # the app recovers
        KitRepo(session).create("after", "After", "tok10", "cup")
    assert _count(db, BrandKit) == 2


def test_read_only_database_is_read_only_storage(db: Database, db_path: Path, kit: BrandKit) -> None:
    db.dispose()
    read_only = Database(f"sqlite:///file:{db_path}?mode=ro&uri=true")
    try:
        with read_only.session(write=False) as session:
            assert [k.slug for k in KitRepo(session).list()] == ["acme"]
        with pytest.raises(ReadOnlyStorage, match="read-only"), read_only.session() as session:
            KitRepo(session).create("nope", "Nope", "tok11", "cup")
    finally:
        read_only.dispose()


def test_concurrent_writers_never_see_database_is_locked(db: Database, db_url: str) -> None:
    """Web app and worker writing at once (bad input 30): every write commits, none fails."""
    errors: list[BaseException] = []
    start = threading.Barrier(2)

    def writer(name: str) -> None:
        database = Database(db_url)
        try:
            start.wait()
            for i in range(50):
                with database.session() as session:
                    # read-then-write: with a deferred BEGIN this is where WAL raises SQLITE_BUSY
                    existing = session.scalar(select(func.count()).select_from(Job))
                    session.add(Job(kind=name, payload={"i": i, "seen": existing}))
        except BaseException as err:  # collected and asserted below
            errors.append(err)
        finally:
            database.dispose()

    threads = [threading.Thread(target=writer, args=(name,)) for name in ("web", "worker")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    with db.session(write=False) as session:
        rows = session.execute(select(Job.kind, Job.payload)).all()
    assert len(rows) == 100
    for name in ("web", "worker"):
        assert sorted(p["i"] for k, p in rows if k == name) == list(range(50))
    assert sorted(p["seen"] for _, p in rows) == list(range(100))  # writes were serialised
