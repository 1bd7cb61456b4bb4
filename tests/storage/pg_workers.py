"""Worker processes for the PostgreSQL tests (started with multiprocessing "spawn": a fresh interpreter
and its own engine each, as on separate machines). Each function is a process target.

Claims are logged in a side table ``claim_log`` in the same transaction as the claim, so the log holds
exactly the claims that committed.
"""

from __future__ import annotations

import random
import time
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Barrier, Event
from typing import Any

from sqlalchemy import text

from storage import Database, JobRepo
from storage.models import utcnow

CLAIM_LOG_DDL = (
    "CREATE TABLE claim_log (id serial PRIMARY KEY, job_id integer NOT NULL, owner text NOT NULL, "
    "attempt integer NOT NULL, claimed_at timestamptz NOT NULL DEFAULT clock_timestamp())"
)
_LOG_CLAIM = text("INSERT INTO claim_log (job_id, owner, attempt) VALUES (:job_id, :owner, :attempt)")


def _claim(db: Database, owner: str, lease_s: float) -> tuple[int, int] | None:
    with db.session() as session:
        job = JobRepo(session).claim_next(owner, lease_s)
        if job is None:
            return None
        session.execute(_LOG_CLAIM, {"job_id": job.id, "owner": owner, "attempt": job.attempts})
        return job.id, int(job.payload["n"])


def drain_queue(url: str, owner: str, start: Barrier, lease_s: float) -> None:
    """claim_next -> heartbeat -> finish until claim_next finds nothing; any lost lease is an error."""
    db = Database.open(url)
    rng = random.Random(owner)
    try:
        start.wait(timeout=60)
        while (claimed := _claim(db, owner, lease_s)) is not None:
            job_id, n = claimed
            with db.session() as session:
                if not JobRepo(session).heartbeat(job_id, owner, lease_s, progress=0.5):
                    raise RuntimeError(f"{owner} lost the lease of job {job_id} while working on it")
            time.sleep(rng.uniform(0, 0.004))  # the "work": lets the other workers interleave
            with db.session() as session:
                if not JobRepo(session).finish(job_id, owner, "succeeded", result={"owner": owner, "n": n}):
                    raise RuntimeError(f"{owner} could not finish job {job_id}: its lease was lost")
    finally:
        db.dispose()


def stall_after_claim(url: str, owner: str, lease_s: float, stalled: Event, resume: Event, out: Queue[Any]) -> None:
    """Claim one job, heartbeat twice, then hang (no heartbeats) until ``resume``; report whether the
    late heartbeat and finish still worked (they must not, once another worker took the job)."""
    db = Database.open(url)
    try:
        claimed = _claim(db, owner, lease_s)
        if claimed is None:
            raise RuntimeError(f"{owner} found no job to claim")
        job_id, _ = claimed
        for _ in range(2):
            time.sleep(lease_s / 4)
            with db.session() as session:
                if not JobRepo(session).heartbeat(job_id, owner, lease_s):
                    raise RuntimeError(f"{owner} lost job {job_id} while still heartbeating")
        out.put(("last_heartbeat", utcnow()))
        stalled.set()
        resume.wait(timeout=60)
        with db.session() as session:
            late_heartbeat = JobRepo(session).heartbeat(job_id, owner, lease_s)
        with db.session() as session:
            late_finish = JobRepo(session).finish(job_id, owner, "succeeded", result={"owner": owner})
        out.put(("late", (late_heartbeat, late_finish)))
    finally:
        db.dispose()


def poll_and_finish(url: str, owner: str, lease_s: float, deadline_s: float, out: Queue[Any]) -> None:
    """Poll claim_next until a job comes free (another worker's lease expired), then finish it."""
    db = Database.open(url)
    try:
        give_up = time.monotonic() + deadline_s
        while (claimed := _claim(db, owner, lease_s)) is None:
            if time.monotonic() > give_up:
                raise RuntimeError(f"{owner} found no claimable job within {deadline_s} s")
            time.sleep(0.05)
        job_id, _ = claimed
        out.put(("claimed", (job_id, utcnow())))
        with db.session() as session:
            if not JobRepo(session).finish(job_id, owner, "succeeded", result={"owner": owner}):
                raise RuntimeError(f"{owner} could not finish job {job_id}")
    finally:
        db.dispose()


def submit_keys(url: str, keys: list[str], start: Barrier, out: Queue[Any]) -> None:
    """Enqueue one job per idempotency key, each in its own transaction (a double-submitting client)."""
    db = Database.open(url)
    try:
        start.wait(timeout=60)
        submitted = []
        for key in keys:
            with db.session() as session:
                job, created = JobRepo(session).enqueue("train", {"key": key}, idempotency_key=key)
            submitted.append((key, job.id, created))
        out.put(submitted)
    finally:
        db.dispose()


def open_database(url: str, start: Barrier, out: Queue[Any]) -> None:
    """Start up against the shared database (migrating it if nobody has yet)."""
    start.wait(timeout=60)
    db = Database.open(url)
    report = db.last_migration
    db.dispose()
    out.put(None if report is None else (report.from_revision, report.to_revision))
