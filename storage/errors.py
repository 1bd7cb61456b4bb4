"""Typed storage errors. Each message says what is wrong and how to fix it.

:func:`translate_db_error` and :func:`translate_os_error` turn low-level driver/OS errors into these
types; everything else is left alone so real bugs still surface with their own traceback.
"""

from __future__ import annotations

import errno
import re
import sqlite3

from sqlalchemy import exc as sa_exc


class StorageError(Exception):
    """Base class of every error raised by :mod:`storage`."""


class RowNotFound(StorageError, LookupError):
    """A repository operation named a row id that does not exist."""


class BlobNotFound(StorageError, LookupError):
    """The blob store has no file for the requested sha256."""


class BlobCorrupt(StorageError):
    """A blob file's content no longer hashes to its name (disk damage or tampering)."""


class StorageFull(StorageError):
    """A write failed because the disk (or quota, or the database size limit) is full."""


class SchemaTooNew(StorageError):
    """The database was migrated by a newer Brand Studio: its schema revision is unknown here."""


class DatabaseCorrupt(StorageError):
    """The database file is damaged or is not an SQLite database at all."""


class IntegrityViolation(StorageError):
    """A write broke a database rule (unique value, reference to a missing row, allowed values)."""


class ReadOnlyStorage(StorageError):
    """The data directory or database cannot be written (read-only mount or missing permission)."""


_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})
_READONLY_ERRNOS = frozenset({errno.EROFS, errno.EACCES, errno.EPERM})

# SQLite primary result codes (https://www.sqlite.org/rescode.html).
_SQLITE_READONLY = 8
_SQLITE_CORRUPT = 11
_SQLITE_FULL = 13
_SQLITE_NOTADB = 26


def translate_os_error(err: OSError, action: str) -> StorageError:
    """Map an OSError raised while ``action`` (e.g. "writing blob ab12...") to a StorageError."""
    if err.errno in _FULL_ERRNOS:
        return StorageFull(
            f"storage full while {action} ({err.strerror or err}); free disk space or raise the "
            "quota, then retry — nothing was half-written"
        )
    if err.errno in _READONLY_ERRNOS:
        return ReadOnlyStorage(
            f"cannot write while {action}: {err.strerror or err} ({err.filename or 'data dir'}); "
            "make the data directory writable (check mount options and permissions), then retry"
        )
    return StorageError(f"I/O error while {action}: {err}; check the disk, then retry")


def _sqlite_code(orig: BaseException) -> int | None:
    code = getattr(orig, "sqlite_errorcode", None)
    return code & 0xFF if isinstance(code, int) else None


def corrupt_error(detail: str, where: str) -> DatabaseCorrupt:
    return DatabaseCorrupt(
        f"database {where} is damaged ({detail}); Brand Studio will not write to it. Restore the "
        "newest file from the backups folder (or move the damaged file away to start fresh)"
    )


def translate_db_error(err: BaseException, where: str = "") -> StorageError | None:
    """Return the StorageError for a DB-API/SQLAlchemy error, or None if it is not a storage fault.

    Recognises disk full, read-only database, corruption and integrity violations, both for the
    sqlite3 driver (by result code and message) and, by message, for other drivers; on PostgreSQL a
    too-long string or too-large number (SQLSTATE 22001/22003) is an integrity violation too.
    """
    orig: BaseException = err.orig if isinstance(err, sa_exc.DBAPIError) else err  # type: ignore[assignment]
    if isinstance(err, sa_exc.IntegrityError) or isinstance(orig, sqlite3.IntegrityError):
        return IntegrityViolation(describe_integrity_error(str(orig)))
    value_rule = _PG_VALUE_RULES.get(str(getattr(orig, "sqlstate", "")))  # PostgreSQL enforces these
    if value_rule is not None:
        return IntegrityViolation(f"cannot save: {value_rule} ({_first_line(str(orig))})")
    if not isinstance(orig, sqlite3.Error | sa_exc.DBAPIError) and not isinstance(err, sa_exc.DBAPIError):
        return None
    code = _sqlite_code(orig)
    text = str(orig).lower()
    if code == _SQLITE_FULL or "database or disk is full" in text or "no space left" in text:
        return StorageFull(
            f"storage full: the database could not save ({orig}); the change was rolled back. "
            "Free disk space, then retry"
        )
    if code == _SQLITE_READONLY or "readonly database" in text or "read-only" in text:
        return ReadOnlyStorage(
            f"the database is read-only ({orig}); make the data directory and database file "
            "writable, then retry"
        )
    if code in (_SQLITE_CORRUPT, _SQLITE_NOTADB) or "malformed" in text or "not a database" in text:
        return corrupt_error(str(orig), where or "file")
    return None


# SQLSTATEs of PostgreSQL data errors that break a column's rule (SQLite stores such values as given).
_PG_VALUE_RULES = {
    "22001": "a text value is longer than its column allows; shorten it",
    "22003": "a number is too large for its column; use a smaller value",
}

_SQLITE_INTEGRITY = [
    (
        re.compile(r"UNIQUE constraint failed: (?P<what>.+)"),
        "a row with the same {what} already exists; choose a different value",
    ),
    (
        re.compile(r"CHECK constraint failed: (?P<what>.+)"),
        "a value breaks the rule {what}; correct the value",
    ),
    (re.compile(r"NOT NULL constraint failed: (?P<what>.+)"), "{what} is required but was empty"),
    (
        re.compile(r"FOREIGN KEY constraint failed"),
        "it refers to a row that does not exist (or removes a row that other rows still use); "
        "check the ids involved",
    ),
    # PostgreSQL wording (psycopg): the constraint's name says which rule.
    (
        re.compile(r'duplicate key value violates unique constraint "(?P<what>[^"]+)"'),
        "a row with the same value already exists ({what}); choose a different value",
    ),
    (
        re.compile(r'violates check constraint "(?P<what>[^"]+)"'),
        "a value breaks the rule {what}; correct the value",
    ),
    (
        re.compile(r'null value in column "(?P<what>[^"]+)".* violates not-null constraint'),
        "{what} is required but was empty",
    ),
    (
        re.compile(r"violates foreign key constraint"),
        "it refers to a row that does not exist (or removes a row that other rows still use); "
        "check the ids involved",
    ),
]


def _first_line(message: str) -> str:
    return message.strip().splitlines()[0] if message.strip() else "integrity error"


def describe_integrity_error(message: str) -> str:
    """A readable sentence for an integrity error message (SQLite and PostgreSQL wording; others pass
    through)."""
    first_line = _first_line(message)
    for pattern, template in _SQLITE_INTEGRITY:
        match = pattern.search(first_line)
        if match:
            groups = match.groupdict()
            return "cannot save: " + template.format(**groups)
    return f"cannot save: a database rule was broken ({first_line})"
