"""A process killed mid-transaction (SIGKILL) leaves the database consistent (bad inputs 34-37)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from datetime import timedelta
from pathlib import Path

import pytest

from storage import Database, JobRepo, KitRepo
from storage.models import utcnow

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")

_CHILD = textwrap.dedent(
    """
    import os, signal, sys
    from storage import Database, JobRepo, KitRepo
    db = Database.open(sys.argv[1])
    with db.session() as s:
        KitRepo(s).create("committed", "Committed", "tok5", "cup")
    with db.session() as s:
        job = JobRepo(s).claim_next("doomed-worker", lease_s=1)
        assert job is not None
    with db.session() as s:
        KitRepo(s).create("in-flight", "In flight", "tok6", "cup")
        s.flush()  # the row is in the WAL, uncommitted, when the process dies
        os.kill(os.getpid(), signal.SIGKILL)
    """
)


def test_killed_writer_leaves_committed_data_and_no_partial_transaction(db: Database, db_url: str) -> None:
    with db.session() as session:
        JobRepo(session).enqueue("train", {"kit": "committed"})
    db.dispose()
    repo_root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": f"{repo_root}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    child = subprocess.run([sys.executable, "-c", _CHILD, db_url], env=env, timeout=60, capture_output=True)
    assert child.returncode == -signal.SIGKILL, child.stderr.decode()

    reopened = Database.open(db_url)  # runs quick_check: the WAL left behind is valid
    try:
        with reopened.session(write=False) as session:
            assert [k.slug for k in KitRepo(session).list()] == ["committed"]
        with reopened.session() as session:  # the dead worker's lease expires; another worker resumes
            job = JobRepo(session).claim_next("w2", lease_s=60, now=utcnow() + timedelta(days=1))
        assert job is not None and job.attempts == 2 and job.lease_owner == "w2"
    finally:
        reopened.dispose()
