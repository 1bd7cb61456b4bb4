"""JobRepo: a database-backed job queue with leases, safe for several workers on one database.

A worker claims a job with a lease (``claim_next``), renews it with ``heartbeat`` and ends it with
``finish``. Every state change is a conditional ``UPDATE ... WHERE`` on the state the caller saw,
checked through its row count, so two workers can never both win the same job: on SQLite the write
transactions are serialised (BEGIN IMMEDIATE), on PostgreSQL the loser's UPDATE re-checks the WHERE
after the winner commits and matches nothing. A job whose lease expired (worker killed) is claimable
again, and its ``attempts`` counter keeps growing; ``max_attempts`` turns it into a failure.

On PostgreSQL (READ COMMITTED) the transactions are not serialised, so a claim first locks the
oldest claimable row with ``FOR NO KEY UPDATE SKIP LOCKED``: workers never queue behind each other's
uncommitted claims, and ``claim_next`` never answers "nothing to do" just because other workers held
its candidates while jobs remained. The multi-row UPDATEs (giving up, requeueing) take only rows no
other transaction holds, the same way, so workers running them together neither wait nor deadlock.
SQLite keeps the plain candidate loop (its writers hold the database lock for the whole transaction).
"""

from __future__ import annotations

import builtins
import json
import logging
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any, Literal, cast, get_args

from sqlalchemy import ColumnElement, and_, or_, select, update
from sqlalchemy.engine import CursorResult
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from storage.models import Job, utcnow

logger = logging.getLogger(__name__)

JobStatus = Literal["queued", "running", "succeeded", "failed", "cancelled"]
JOB_STATUSES: frozenset[str] = frozenset(get_args(JobStatus))
FINAL_STATUSES: frozenset[str] = frozenset({"succeeded", "failed", "cancelled"})
_CLAIM_CANDIDATES = 8


def _expired(now: datetime) -> ColumnElement[bool]:
    return and_(Job.status == "running", Job.lease_expires_at < now)


def _claimable(now: datetime) -> ColumnElement[bool]:
    return or_(Job.status == "queued", _expired(now))


def _check_lease(lease_s: float) -> timedelta:
    if not lease_s > 0:
        raise ValueError(f"lease_s must be a positive number of seconds, not {lease_s!r}")
    return timedelta(seconds=lease_s)


class JobRepo:
    def __init__(self, session: Session) -> None:
        self.session = session
        self._skip_locked = session.get_bind().dialect.name == "postgresql"

    def _unlocked(self, condition: ColumnElement[bool]) -> ColumnElement[bool]:
        """``condition``, narrowed on PostgreSQL to the rows no other transaction holds (and locked)."""
        if not self._skip_locked:
            return condition
        free = select(Job.id).where(condition).correlate(None).with_for_update(key_share=True, skip_locked=True)
        return and_(condition, Job.id.in_(free))

    def _update(self, statement: Any) -> int:
        result = cast(
            CursorResult[Any],
            self.session.execute(statement.execution_options(synchronize_session="fetch")),
        )
        return result.rowcount

    def enqueue(
        self, kind: str, payload: Mapping[str, Any], idempotency_key: str | None = None
    ) -> tuple[Job, bool]:
        """Queue a job; with an ``idempotency_key`` already used, return that job and False instead.

        A double-click or browser retry that sends the same key therefore yields one job.
        """
        try:
            json.dumps(payload)
        except (TypeError, ValueError) as err:
            raise ValueError(f"job payload must be JSON-serialisable: {err}") from err
        if idempotency_key is not None:
            existing = self._by_key(idempotency_key)
            if existing is not None:
                return self._same_kind(existing, kind), False
        job = Job(kind=kind, payload=dict(payload), idempotency_key=idempotency_key, status="queued")
        try:
            with self.session.begin_nested():
                self.session.add(job)
        except IntegrityError:
            existing = self._by_key(idempotency_key) if idempotency_key is not None else None
            if existing is None:
                raise
            return self._same_kind(existing, kind), False  # a concurrent enqueue with the same key won
        return job, True

    def get_by_key(self, key: str) -> Job | None:
        return self._by_key(key)

    def _by_key(self, key: str) -> Job | None:
        return self.session.scalars(select(Job).where(Job.idempotency_key == key)).one_or_none()

    @staticmethod
    def _same_kind(job: Job, kind: str) -> Job:
        if job.kind != kind:
            raise ValueError(
                f"idempotency key {job.idempotency_key!r} already belongs to a {job.kind!r} job "
                f"(#{job.id}), not {kind!r}; use a different key"
            )
        return job

    def get(self, id: int) -> Job | None:
        return self.session.get(Job, id)

    def claim_next(
        self,
        owner: str,
        lease_s: float,
        kinds: Iterable[str] | None = None,
        *,
        max_attempts: int | None = None,
        now: datetime | None = None,
    ) -> Job | None:
        """Claim the oldest queued job (or a running one whose lease expired) for ``owner``.

        Sets it running with a lease of ``lease_s`` seconds and increments ``attempts``. With
        ``max_attempts``, jobs that already used them up are failed instead of claimed.
        Returns None when there is nothing to do.
        """
        now = now or utcnow()
        lease = _check_lease(lease_s)
        kind_list = None if kinds is None else builtins.list(kinds)
        if max_attempts is not None:
            self._fail_exhausted(now, max_attempts, kind_list)
        query = select(Job.id, Job.attempts).where(_claimable(now))
        if kind_list is not None:
            query = query.where(Job.kind.in_(kind_list))
        query = query.order_by(Job.created_at, Job.id)
        if self._skip_locked:  # lock the oldest row nobody else is claiming; skip, never wait
            query = query.limit(1).with_for_update(key_share=True, skip_locked=True)
        else:
            query = query.limit(_CLAIM_CANDIDATES)
        for job_id, attempts in self.session.execute(query).all():
            claimed = self._update(
                update(Job)
                .where(Job.id == job_id, Job.attempts == attempts, _claimable(now))
                .values(
                    status="running",
                    lease_owner=owner,
                    lease_expires_at=now + lease,
                    heartbeat_at=now,
                    attempts=Job.attempts + 1,
                    updated_at=now,
                )
            )
            if claimed == 1:
                logger.info("job %s claimed by %s (attempt %d)", job_id, owner, attempts + 1)
                return self.session.get(Job, job_id, populate_existing=True)
        return None

    def claim(self, job_id: int, owner: str, lease_s: float, *, now: datetime | None = None) -> Job | None:
        """Claim one specific job (queued, or running with an expired lease); None if someone else has it."""
        now = now or utcnow()
        claimed = self._update(
            update(Job)
            .where(Job.id == job_id, _claimable(now))
            .values(status="running", lease_owner=owner, lease_expires_at=now + _check_lease(lease_s),
                    heartbeat_at=now, attempts=Job.attempts + 1, updated_at=now)  # fmt: skip
        )
        return self.session.get(Job, job_id, populate_existing=True) if claimed == 1 else None

    def _fail_exhausted(self, now: datetime, max_attempts: int, kinds: builtins.list[str] | None) -> int:
        condition = and_(Job.attempts >= max_attempts, _claimable(now))
        if kinds is not None:
            condition = and_(condition, Job.kind.in_(kinds))
        failed = self._update(
            update(Job)
            .where(self._unlocked(condition))
            .values(
                status="failed",
                error=f"gave up after {max_attempts} attempts (the worker stopped without finishing)",
                lease_expires_at=None,
                updated_at=now,
            )
        )
        if failed:
            logger.warning("%d jobs failed after %d attempts", failed, max_attempts)
        return failed

    def heartbeat(
        self,
        job_id: int,
        owner: str,
        lease_s: float,
        progress: float | None = None,
        message: str | None = None,
    ) -> bool:
        """Extend ``owner``'s lease; False if the lease was lost (re-claimed, cancelled, finished)."""
        now = utcnow()
        values: dict[str, Any] = {
            "lease_expires_at": now + _check_lease(lease_s),
            "heartbeat_at": now,
            "updated_at": now,
        }
        if progress is not None:
            if not 0.0 <= progress <= 1.0:
                raise ValueError(f"progress must be between 0 and 1, not {progress!r}")
            values["progress"] = progress
        if message is not None:
            values["message"] = message
        statement = update(Job).where(Job.id == job_id, Job.status == "running", Job.lease_owner == owner)
        return self._update(statement.values(**values)) == 1

    def finish(
        self,
        job_id: int,
        owner: str,
        status: JobStatus,
        result: Mapping[str, Any] | None = None,
        error: str | None = None,
    ) -> bool:
        """End ``owner``'s job as succeeded/failed/cancelled; False if the lease was already lost."""
        if status not in FINAL_STATUSES:
            raise ValueError(f"finish() needs one of {sorted(FINAL_STATUSES)}, not {status!r}")
        values: dict[str, Any] = {
            "status": status,
            "result": None if result is None else dict(result),
            "error": error,
            "lease_expires_at": None,
            "updated_at": utcnow(),
        }
        if status == "succeeded":
            values["progress"] = 1.0
        statement = update(Job).where(Job.id == job_id, Job.status == "running", Job.lease_owner == owner)
        return self._update(statement.values(**values)) == 1

    def cancel(self, job_id: int) -> bool:
        """Cancel a queued or running job (its worker's next heartbeat returns False)."""
        statement = update(Job).where(Job.id == job_id, Job.status.in_(("queued", "running")))
        return (
            self._update(statement.values(status="cancelled", lease_expires_at=None, updated_at=utcnow()))
            == 1
        )

    def list(
        self, kind: str | None = None, status: JobStatus | None = None, limit: int = 50
    ) -> builtins.list[Job]:
        """Jobs, newest first, optionally filtered by kind and status."""
        query = select(Job)
        if kind is not None:
            query = query.where(Job.kind == kind)
        if status is not None:
            query = query.where(Job.status == status)
        query = query.order_by(Job.created_at.desc(), Job.id.desc()).limit(limit)
        return builtins.list(self.session.scalars(query).all())

    def requeue_expired(self, now: datetime | None = None, *, max_attempts: int | None = None) -> int:
        """Put running jobs whose lease expired back in the queue; return how many.

        With ``max_attempts``, expired jobs that used them up are failed instead of requeued.
        """
        now = now or utcnow()
        if max_attempts is not None:
            self._fail_exhausted(now, max_attempts, None)
        requeued = self._update(
            update(Job)
            .where(self._unlocked(_expired(now)))
            .values(status="queued", lease_owner=None, lease_expires_at=None, updated_at=now)
        )
        if requeued:
            logger.warning("requeued %d jobs whose worker lease expired", requeued)
        return requeued
