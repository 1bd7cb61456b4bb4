"""SQLite backups: online copies with the backup API, integrity checks, and restoring a copy.

Nothing here ever writes to the database being checked or backed up, and a restore moves the
damaged file aside instead of overwriting it.
"""

from __future__ import annotations

import logging
import os
import shutil
import sqlite3
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path

from storage.errors import StorageError, corrupt_error, translate_db_error, translate_os_error
from storage.files import fsync_dir, fsync_file

logger = logging.getLogger(__name__)

BACKUP_SUFFIX = ".sqlite3"
_SIDECARS = ("-wal", "-shm", "-journal")


def _stamp() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")


def open_read_only(path: Path) -> sqlite3.Connection:
    """A sqlite3 connection that cannot write to ``path`` (``mode=ro`` URI)."""
    return sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)


def quick_check(path: Path) -> None:
    """Raise DatabaseCorrupt unless ``PRAGMA quick_check`` on ``path`` says ok (read-only)."""
    try:
        with closing(open_read_only(path)) as connection:
            rows = connection.execute("PRAGMA quick_check").fetchall()
    except sqlite3.Error as err:
        translated = translate_db_error(err, str(path))
        raise (translated or StorageError(f"cannot open database {path}: {err}")) from err
    if [tuple(row) for row in rows] != [("ok",)]:
        detail = "; ".join(str(row[0]) for row in rows[:3])
        raise corrupt_error(f"quick_check: {detail}", str(path))


def backup_sqlite(path: Path, backup_dir: Path, revision: str | None) -> Path:
    """Copy a live SQLite database with the backup API to ``backup_dir/<stem>-<utc>-<rev>.sqlite3``.

    The copy is written to a temp name, fsynced and renamed, so a listed backup is always complete.
    """
    target = backup_dir / f"{path.stem}-{_stamp()}-{revision or 'base'}{BACKUP_SUFFIX}"
    temp = backup_dir / f".tmp-{target.name}"
    try:
        backup_dir.mkdir(parents=True, exist_ok=True)
        with closing(open_read_only(path)) as source, closing(sqlite3.connect(temp)) as copy:
            source.backup(copy)
        fsync_file(temp)
        os.replace(temp, target)
        fsync_dir(backup_dir)
    except OSError as err:
        raise translate_os_error(err, f"backing up the database to {backup_dir}") from err
    except sqlite3.Error as err:
        raise (translate_db_error(err, str(path)) or StorageError(f"database backup failed: {err}")) from err
    finally:
        temp.unlink(missing_ok=True)
    logger.info("backed up %s to %s", path, target)
    return target


def list_backups(backup_dir: Path, stem: str | None = None) -> list[Path]:
    """Complete backups in ``backup_dir`` (optionally of one database ``stem``), newest first."""
    if not backup_dir.is_dir():
        return []
    found = [
        p
        for p in backup_dir.glob(f"*{BACKUP_SUFFIX}")
        if p.is_file() and not p.name.startswith(".tmp-") and (stem is None or p.name.startswith(f"{stem}-"))
    ]
    return sorted(found, key=lambda p: (p.stat().st_mtime_ns, p.name), reverse=True)


def restore_backup(backup: Path, db_path: Path) -> Path | None:
    """Put ``backup`` in place of ``db_path``; return where the previous file was moved (or None).

    The backup must pass quick_check first. The previous database and its -wal/-shm files are
    renamed to ``<name>.damaged-<utc>``, never deleted. Close every connection to ``db_path`` first
    (``Database.dispose()``).
    """
    quick_check(backup)
    stamp = _stamp()
    moved_aside: Path | None = None
    temp = db_path.parent / f".tmp-restore-{stamp}{BACKUP_SUFFIX}"
    try:
        db_path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(backup, temp)
        fsync_file(temp)
        for suffix in ("", *_SIDECARS):
            current = Path(f"{db_path}{suffix}")
            if current.exists():
                aside = Path(f"{db_path}.damaged-{stamp}{suffix}")
                os.replace(current, aside)
                moved_aside = aside if suffix == "" else moved_aside
        os.replace(temp, db_path)
        fsync_dir(db_path.parent)
    except OSError as err:
        raise translate_os_error(err, f"restoring {backup.name} to {db_path}") from err
    finally:
        temp.unlink(missing_ok=True)
    logger.warning("restored %s from %s (previous file kept as %s)", db_path, backup, moved_aside)
    return moved_aside
