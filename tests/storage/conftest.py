"""Fixtures for storage tests: real SQLite files under tmp_path, migrated with the real migrations."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

# pytest's default "prepend" import mode puts tests/ (the rootdir conftest's folder) on sys.path, and
# tests/storage/ (no __init__.py) then shadows the real `storage` package as a namespace package
# unless the repository root is on sys.path too (it is under `python -m pytest`, not under `pytest`).
_REPO_ROOT = str(Path(__file__).resolve().parents[2])
if _REPO_ROOT not in sys.path:
    sys.path.insert(0, _REPO_ROOT)

from storage import BlobStore, Database, KitRepo  # noqa: E402
from storage.models import BrandKit  # noqa: E402
from tests.storage.postgres_server import REQUIRE_ENV, PostgresServer, find_pg_bin, require_postgres  # noqa: E402


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "data" / "studio.sqlite3"


@pytest.fixture
def db_url(db_path: Path) -> str:
    return f"sqlite:///{db_path}"


@pytest.fixture
def db(db_url: str, tmp_path: Path) -> Iterator[Database]:
    database = Database.open(db_url, backup_dir=tmp_path / "backups")
    yield database
    database.dispose()


@pytest.fixture
def store(tmp_path: Path) -> BlobStore:
    return BlobStore(tmp_path / "blobs")


@pytest.fixture
def kit(db: Database) -> BrandKit:
    with db.session() as session:
        return KitRepo(session).create("acme", "Acme", "acmebrand", "bottle", "water bottles")


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A throwaway PostgreSQL server for the session; skipped (or failed, under
    BRAND_STUDIO_REQUIRE_POSTGRES=1) when the server binaries or the psycopg driver are missing."""

    def unavailable(reason: str) -> None:
        if require_postgres():
            pytest.fail(f"{REQUIRE_ENV} is set but {reason}", pytrace=False)
        pytest.skip(reason)

    bin_dir, reason = find_pg_bin()
    if bin_dir is None:
        unavailable(reason)
        return
    if importlib.util.find_spec("psycopg") is None:
        unavailable("the psycopg driver is not installed; pip install -e '.[postgres]'")
    try:
        server = PostgresServer(bin_dir)
    except RuntimeError as err:  # root without a user to run the server as
        unavailable(str(err))
        return
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture
def pg_url(postgres_server: PostgresServer) -> str:
    """The URL of a fresh, empty PostgreSQL database (one per test)."""
    return postgres_server.create_database()
