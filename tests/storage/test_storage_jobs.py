"""Job queue: idempotent enqueue, leases, concurrent claimers, expiry and re-claim, give-up."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest

from storage import Database, JobRepo
from storage.models import Job, utcnow


def _enqueue(db: Database, count: int, kind: str = "train") -> list[int]:
    with db.session() as session:
        repo = JobRepo(session)
        return [repo.enqueue(kind, {"n": i})[0].id for i in range(count)]


def _get(db: Database, job_id: int) -> Job:
    with db.session(write=False) as session:
        job = JobRepo(session).get(job_id)
    assert job is not None
    return job


def test_idempotency_key_returns_the_same_job(db: Database) -> None:
    with db.session() as session:
        first, created = JobRepo(session).enqueue(
            "train", {"kit_id": 1}, idempotency_key="train-kit-1-click-7"
        )
    with db.session() as session:  # the double click arrives as a second request
        again, created_again = JobRepo(session).enqueue(
            "train", {"kit_id": 1}, idempotency_key="train-kit-1-click-7"
        )
        other, created_other = JobRepo(session).enqueue("train", {"kit_id": 1})
    assert created and not created_again and created_other
    assert again.id == first.id and other.id != first.id
    with db.session(write=False) as session:
        assert len(JobRepo(session).list()) == 2
    with pytest.raises(ValueError, match="already belongs to a 'train' job"), db.session() as session:
        JobRepo(session).enqueue("export", {}, idempotency_key="train-kit-1-click-7")
    with pytest.raises(ValueError, match="JSON"), db.session() as session:
        JobRepo(session).enqueue("train", {"path": object()})


def test_concurrent_enqueue_with_one_key_creates_one_job(db: Database, db_url: str) -> None:
    results: list[tuple[int, bool]] = []
    errors: list[BaseException] = []
    start = threading.Barrier(4)

    def click() -> None:
        database = Database(db_url)
        try:
            start.wait()
            with database.session() as session:
                job, created = JobRepo(session).enqueue("train", {}, idempotency_key="same-click")
            results.append((job.id, created))
        except BaseException as err:
            errors.append(err)
        finally:
            database.dispose()

    threads = [threading.Thread(target=click) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert errors == []
    assert len({job_id for job_id, _ in results}) == 1
    assert sorted(created for _, created in results) == [False, False, False, True]


def test_claim_takes_oldest_first_and_filters_kinds(db: Database) -> None:
    (train_a,) = _enqueue(db, 1, "train")
    (export_b,) = _enqueue(db, 1, "export")
    (train_c,) = _enqueue(db, 1, "train")
    with db.session() as session:
        repo = JobRepo(session)
        first = repo.claim_next("w1", lease_s=60, kinds=["export"])
        second = repo.claim_next("w1", lease_s=60)
        third = repo.claim_next("w1", lease_s=60)
        assert repo.claim_next("w1", lease_s=60) is None
    assert first is not None and second is not None and third is not None
    assert [first.id, second.id, third.id] == [export_b, train_a, train_c]
    assert first.status == "running" and first.lease_owner == "w1" and first.attempts == 1
    assert first.lease_expires_at is not None and first.heartbeat_at is not None
    assert timedelta(seconds=59) < first.lease_expires_at - first.heartbeat_at <= timedelta(seconds=60)


def test_two_workers_never_claim_the_same_job(db: Database, db_url: str) -> None:
    """Bad input 31: two workers on separate connections claim concurrently, each job exactly once."""
    job_ids = _enqueue(db, 40)
    claimed: dict[str, list[int]] = {"w1": [], "w2": []}
    errors: list[BaseException] = []
    start = threading.Barrier(2)

    def worker(owner: str) -> None:
        database = Database(db_url)
        try:
            start.wait()
            while True:
                with database.session() as session:
                    job = JobRepo(session).claim_next(owner, lease_s=300)
                if job is None:
                    return
                claimed[owner].append(job.id)
        except BaseException as err:
            errors.append(err)
        finally:
            database.dispose()

    threads = [threading.Thread(target=worker, args=(owner,)) for owner in claimed]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    all_claims = claimed["w1"] + claimed["w2"]
    assert sorted(all_claims) == sorted(job_ids)  # every job once, none twice
    for owner, ids in claimed.items():
        for job_id in ids:
            job = _get(db, job_id)
            assert (job.lease_owner, job.attempts, job.status) == (owner, 1, "running")


def test_expired_lease_is_reclaimed_and_the_old_owner_loses_it(db: Database) -> None:
    (job_id,) = _enqueue(db, 1)
    with db.session() as session:
        job = JobRepo(session).claim_next("w1", lease_s=30)
        assert job is not None and job.id == job_id
        assert JobRepo(session).claim_next("w2", lease_s=30) is None  # lease still valid
    later = utcnow() + timedelta(seconds=31)  # w1 was killed and stopped heartbeating
    with db.session() as session:
        again = JobRepo(session).claim_next("w2", lease_s=30, now=later)
    assert again is not None and again.id == job_id
    assert (again.lease_owner, again.attempts, again.status) == ("w2", 2, "running")
    with db.session() as session:
        repo = JobRepo(session)
        assert repo.heartbeat(job_id, "w1", 30, progress=0.9) is False
        assert repo.finish(job_id, "w1", "succeeded", result={"lora": "stale"}) is False
        assert repo.heartbeat(job_id, "w2", 30, progress=0.25, message="step 10/40") is True
    job = _get(db, job_id)
    assert (job.lease_owner, job.progress, job.message, job.result) == ("w2", 0.25, "step 10/40", None)
    with db.session() as session:
        assert JobRepo(session).finish(job_id, "w2", "succeeded", result={"lora_id": 3}) is True
    job = _get(db, job_id)
    assert (job.status, job.progress, job.result, job.lease_expires_at) == (
        "succeeded",
        1.0,
        {"lora_id": 3},
        None,
    )
    with db.session() as session:
        assert JobRepo(session).heartbeat(job_id, "w2", 30) is False  # finished: nothing to extend


def test_heartbeat_extends_the_lease(db: Database) -> None:
    (job_id,) = _enqueue(db, 1)
    with db.session() as session:
        job = JobRepo(session).claim_next("w1", lease_s=1)
        assert job is not None and job.lease_expires_at is not None
        first_expiry = job.lease_expires_at
        assert JobRepo(session).heartbeat(job_id, "w1", lease_s=120)
    expiry = _get(db, job_id).lease_expires_at
    assert expiry is not None and expiry > first_expiry + timedelta(seconds=100)
    with db.session() as session:  # the extended lease protects the job from other workers
        assert JobRepo(session).claim_next("w2", 30, now=first_expiry + timedelta(seconds=5)) is None


def test_requeue_expired(db: Database) -> None:
    expiring, healthy = _enqueue(db, 2)
    with db.session() as session:
        repo = JobRepo(session)
        first = repo.claim_next("w1", lease_s=10)
        second = repo.claim_next("w2", lease_s=3600)
        assert first is not None and first.id == expiring
        assert second is not None and second.id == healthy
    with db.session() as session:
        assert JobRepo(session).requeue_expired() == 0
        assert JobRepo(session).requeue_expired(now=utcnow() + timedelta(minutes=5)) == 1
    job = _get(db, expiring)
    assert (job.status, job.lease_owner, job.lease_expires_at, job.attempts) == ("queued", None, None, 1)
    assert _get(db, healthy).status == "running"
    with db.session() as session:
        reclaimed = JobRepo(session).claim_next("w3", lease_s=10)
    assert reclaimed is not None and reclaimed.id == expiring and reclaimed.attempts == 2


def test_gives_up_after_max_attempts(db: Database) -> None:
    (job_id,) = _enqueue(db, 1)
    now = utcnow()
    for attempt in range(1, 3):
        with db.session() as session:
            job = JobRepo(session).claim_next(f"w{attempt}", lease_s=10, max_attempts=2, now=now)
        assert job is not None and job.attempts == attempt
        now += timedelta(seconds=11)  # each worker dies
    with db.session() as session:
        assert JobRepo(session).claim_next("w3", lease_s=10, max_attempts=2, now=now) is None
    job = _get(db, job_id)
    assert job.status == "failed" and job.error is not None and "gave up after 2 attempts" in job.error


def test_cancel_stops_the_worker(db: Database) -> None:
    running, queued = _enqueue(db, 2)
    with db.session() as session:
        assert JobRepo(session).claim_next("w1", 60) is not None
    with db.session() as session:
        repo = JobRepo(session)
        assert repo.cancel(running) and repo.cancel(queued)
        assert not repo.cancel(queued)  # already cancelled
        assert repo.heartbeat(running, "w1", 60) is False
        assert repo.claim_next("w2", 60) is None
    assert _get(db, running).status == "cancelled"


def test_list_filters_and_validation(db: Database) -> None:
    trains = _enqueue(db, 3, "train")
    exports = _enqueue(db, 2, "export")
    with db.session() as session:
        repo = JobRepo(session)
        assert repo.claim_next("w1", 60, kinds=["export"]) is not None
        assert [j.id for j in repo.list(kind="train")] == trains[::-1]
        assert [j.id for j in repo.list(status="running")] == exports[:1]
        assert [j.id for j in repo.list(kind="export", status="queued")] == exports[1:]
        assert len(repo.list(limit=2)) == 2
        with pytest.raises(ValueError, match="progress"):
            repo.heartbeat(exports[0], "w1", 60, progress=1.5)
        with pytest.raises(ValueError, match="lease_s"):
            repo.claim_next("w1", 0)
        with pytest.raises(ValueError, match="finish"):
            repo.finish(exports[0], "w1", "running")  # type: ignore[arg-type]
