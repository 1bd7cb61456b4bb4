"""Backups: complete copies only, newest first, and restoring without destroying the damaged file."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from storage import Database, DatabaseCorrupt, KitRepo
from storage.backups import backup_sqlite, list_backups, restore_backup


def _slugs(db_url: str) -> list[str]:
    database = Database.open(db_url)
    try:
        with database.session(write=False) as session:
            return [k.slug for k in KitRepo(session).list()]
    finally:
        database.dispose()


def test_backup_of_a_live_database_and_listing(db: Database, db_path: Path, tmp_path: Path) -> None:
    with db.session() as session:
        KitRepo(session).create("acme", "Acme", "tok12", "bottle")
    backups = tmp_path / "backups"
    first = backup_sqlite(db_path, backups, "0001")
    os.utime(first, (1, 1))
    with db.session() as session:  # still writable while/after backing up
        KitRepo(session).create("zeta", "Zeta", "tok13", "shoe")
    second = backup_sqlite(db_path, backups, "0001")
    (backups / ".tmp-half-written.sqlite3").write_bytes(b"partial")
    (backups / "other-20240101T000000Z-0001.sqlite3").write_bytes(b"another database's backup")

    assert list_backups(backups, stem="studio") == [second, first]
    assert len(list_backups(backups)) == 3
    assert list_backups(tmp_path / "missing") == []
    assert _slugs(f"sqlite:///{first}") == ["acme"]


def test_restore_moves_the_damaged_file_aside(
    db: Database, db_path: Path, db_url: str, tmp_path: Path
) -> None:
    with db.session() as session:
        KitRepo(session).create("acme", "Acme", "tok14", "bottle")
    backup = backup_sqlite(db_path, tmp_path / "backups", "0001")
    db.dispose()
    damaged = b"garbage that used to be a database" * 100
    db_path.write_bytes(damaged)
    with pytest.raises(DatabaseCorrupt):
        Database.open(db_url)

    aside = restore_backup(backup, db_path)

    assert aside is not None and aside.read_bytes() == damaged  # kept for forensics, not overwritten
    assert _slugs(db_url) == ["acme"]
    assert backup.is_file()


def test_restore_refuses_a_damaged_backup(db_path: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.sqlite3"
    bad.write_bytes(b"not a database" * 100)
    db_path.parent.mkdir(parents=True)
    db_path.write_bytes(b"current")
    with pytest.raises(DatabaseCorrupt):
        restore_backup(bad, db_path)
    assert db_path.read_bytes() == b"current"
