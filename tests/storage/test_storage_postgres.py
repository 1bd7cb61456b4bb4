"""The storage layer on a real PostgreSQL server (psycopg 3): migrations, repos, and the job queue with
several worker processes sharing one database, as the product promises for multi-machine setups.

Every test gets a fresh database on a throwaway server (see ``postgres_server`` in conftest.py). The
worker processes (``pg_workers``) are started with "spawn", so each has its own interpreter, engine
and connection pool, like workers on other machines.
"""

from __future__ import annotations

import logging
import multiprocessing
import threading
import time
from collections import Counter
from datetime import UTC, timedelta
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text

from storage import (
    HEAD,
    AssetRepo,
    BlobRepo,
    BlobStore,
    Database,
    GenerationRepo,
    IntegrityViolation,
    JobRepo,
    KitRepo,
    KitVersionRepo,
    LoraRepo,
    TrainingRunRepo,
    current_revision,
    make_engine,
)
from storage.migrate import downgrade
from storage.models import Base, utcnow
from tests.storage import pg_workers

MODEL_TABLES = set(Base.metadata.tables)
SPAWN = multiprocessing.get_context("spawn")
JOIN_S = 60


@pytest.fixture
def pg_db(pg_url: str) -> Any:
    database = Database.open(pg_url)
    yield database
    database.dispose()


def _enqueue(db: Database, count: int) -> list[int]:
    with db.session() as session:
        repo = JobRepo(session)
        return [repo.enqueue("train", {"n": i})[0].id for i in range(count)]


def _run(processes: list[Any]) -> None:
    for process in processes:
        process.start()


def _join(processes: list[Any]) -> None:
    for process in processes:
        process.join(JOIN_S)
    for process in processes:
        if process.is_alive():
            process.kill()
    assert [p.exitcode for p in processes] == [0] * len(processes), "a worker process failed (see stderr)"


def _claim_log(db: Database) -> list[tuple[int, str, int]]:
    with db.engine.connect() as connection:
        rows = connection.execute(text("SELECT job_id, owner, attempt FROM claim_log ORDER BY id")).all()
    return [(int(job_id), str(owner), int(attempt)) for job_id, owner, attempt in rows]


def _add_claim_log(db: Database) -> None:
    with db.engine.begin() as connection:
        connection.execute(text(pg_workers.CLAIM_LOG_DDL))


# --- migrations ---------------------------------------------------------------------------------


def test_migrations_reach_head_on_an_empty_database_without_drift(pg_url: str) -> None:
    database = Database.open(pg_url)
    try:
        assert database.last_migration is not None
        assert (database.last_migration.from_revision, database.last_migration.to_revision) == (None, HEAD)
        assert database.engine.dialect.name == "postgresql" and database.engine.dialect.driver == "psycopg"
        with database.engine.connect() as connection:
            assert MODEL_TABLES <= set(inspect(connection).get_table_names())
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            assert compare_metadata(context, Base.metadata) == []

        downgrade(database.engine, "base")
        assert current_revision(database.engine) is None
        with database.engine.connect() as connection:
            assert set(inspect(connection).get_table_names()) & MODEL_TABLES == set()
    finally:
        database.dispose()
    again = Database.open(pg_url)
    again.dispose()
    assert again.last_migration is not None and again.last_migration.from_revision is None


def test_upgrading_filled_database_keeps_rows_and_says_to_use_pg_dump(
    pg_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    engine = make_engine(pg_url)
    try:
        Database.open(pg_url).dispose()
        downgrade(engine, "0001")
        with engine.begin() as connection:  # a kit and a photo written by the 0001 app
            connection.execute(text(
                "INSERT INTO brand_kits (slug, name, trigger_token, class_noun, description, created_at, "
                "updated_at) VALUES ('old', 'Old', 'oldtok', 'cup', '', now(), now())"
            ))  # fmt: skip
            connection.execute(text("INSERT INTO blobs VALUES (:sha, 3, 'image/png', now())"), {"sha": "a" * 64})
            connection.execute(text(
                "INSERT INTO kit_assets (kit_id, blob_sha256, kind, original_name, width, height, caption, "
                "created_at) SELECT id, :sha, 'photo', 'a.png', 8, 8, '', now() FROM brand_kits"
            ), {"sha": "a" * 64})  # fmt: skip
    finally:
        engine.dispose()

    backups = tmp_path / "backups"
    with caplog.at_level(logging.WARNING, logger="storage.migrate"):
        database = Database.open(pg_url, backup_dir=backups)
    try:
        report = database.last_migration
        assert report is not None and (report.from_revision, report.to_revision) == ("0001", HEAD)
        assert report.backup_path is None and not backups.exists()
        assert any("pg_dump" in record.getMessage() for record in caplog.records)
        with database.session(write=False) as session:
            (kit,) = KitRepo(session).list()
            assert (kit.slug, kit.background_color, kit.style_guide) == ("old", "#FFFFFF", {})
            (asset,) = kit.assets
            assert (asset.source, asset.licence, asset.consent, asset.warnings) == ("", "", False, [])
    finally:
        database.dispose()


def test_workers_starting_together_migrate_once(pg_url: str) -> None:
    start, out = SPAWN.Barrier(3), SPAWN.Queue()
    workers = [SPAWN.Process(target=pg_workers.open_database, args=(pg_url, start, out)) for _ in range(3)]
    _run(workers)
    reports = sorted((out.get(timeout=JOIN_S) for _ in workers), key=str)
    _join(workers)
    assert Counter(reports) == Counter({(None, HEAD): 1, (HEAD, HEAD): 2})


# --- repositories -------------------------------------------------------------------------------


def test_repos_round_trip(pg_db: Database, tmp_path: Path) -> None:
    store = BlobStore(tmp_path / "blobs")
    photo, mask, lora_file = (store.put_bytes(data) for data in (b"photo", b"mask", b"lora"))
    with pg_db.session() as session:
        for ref in (photo, mask, lora_file):
            BlobRepo(session).record(ref, "image/png")
        kit = KitRepo(session).create("acme", "Acme", "acmebrand", "bottle", "water",
                                      style_guide={"palette": ["#112233"], "tone": ["calm"]})  # fmt: skip
        asset = AssetRepo(session).add(kit.id, photo.sha256, "photo", "a.png", 64, 48, "a bottle",
                                       mask_sha256=mask.sha256, warnings=["blurry"], consent=True)  # fmt: skip
        version, created = KitVersionRepo(session).create_or_get(kit.id, {"photos": 1}, "f" * 64, [photo.sha256])
        job, _ = JobRepo(session).enqueue("train", {"kit_id": kit.id, "steps": 10}, idempotency_key="k1")
        run = TrainingRunRepo(session).create(kit.id, "tiny", {"rank": 4}, job_id=job.id,
                                              kit_version_id=version.id)  # fmt: skip
        lora = LoraRepo(session).create("acme-v1", lora_file.sha256, "tiny", 4, 4.0, kit_id=kit.id,
                                        training_run_id=run.id, kit_version_id=version.id)  # fmt: skip
        generation = GenerationRepo(session).create(
            images=[{"index": 0, "seed": 2**40, "blob_sha256": photo.sha256, "pixel_sha256": "b" * 64,
                     "parameters": "p"}],  # fmt: skip
            loras=[(lora.id, 0.8)], kit_id=kit.id, model_ref="tiny", prompt="a bottle", scheduler="euler",
            num_inference_steps=4, guidance_scale=5.0, width=64, height=64, seed=2**40, recipe={"seed": 2**40},
        )  # fmt: skip
        ids = (kit.id, asset.id, job.id, run.id, generation.id)
    assert created

    with pg_db.session() as session:
        TrainingRunRepo(session).mark(ids[3], "succeeded", metrics={"loss": 0.1})
    with pg_db.session(write=False) as session:
        kit = KitRepo(session).require(ids[0])
        assert kit.style_guide == {"palette": ["#112233"], "tone": ["calm"]}
        (asset,) = kit.assets
        assert (asset.consent, asset.warnings, asset.mask_sha256) == (True, ["blurry"], mask.sha256)
        stored_job = JobRepo(session).get_by_key("k1")
        assert stored_job is not None and stored_job.id == ids[2]
        assert stored_job.payload == {"kit_id": ids[0], "steps": 10}
        assert stored_job.created_at.tzinfo is UTC and abs(utcnow() - stored_job.created_at) < timedelta(minutes=1)
        stored_run = TrainingRunRepo(session).get(ids[3])
        assert stored_run is not None and stored_run.status == "succeeded" and stored_run.metrics == {"loss": 0.1}
        assert stored_run.finished_at is not None and stored_run.finished_at.tzinfo is UTC
        (generation,) = GenerationRepo(session).list_recent(kit_id=ids[0])
        assert generation.seed == 2**40 and generation.images[0].seed == 2**40
        assert [(g.lora_id, g.weight) for g in generation.loras] == [(LoraRepo(session).list()[0].id, 0.8)]
        assert BlobRepo(session).referenced_shas() == {photo.sha256, mask.sha256, lora_file.sha256}
    with pg_db.session() as session:  # nothing is unreferenced, so blob GC deletes nothing
        assert BlobRepo(session).delete_unreferenced(utcnow() + timedelta(days=1)) == []


def test_column_rules_are_enforced_as_integrity_violations(pg_db: Database) -> None:
    with pg_db.session() as session:
        KitRepo(session).create("acme", "Acme", "acmebrand", "bottle")
    with pytest.raises(IntegrityViolation, match="already exists.*uq_brand_kits_slug"), pg_db.session() as session:
        KitRepo(session).create("acme", "Acme 2", "othertoken", "bottle")
    # SQLite stores an over-long value as given; PostgreSQL refuses it, and the message says so.
    with pytest.raises(IntegrityViolation, match="longer than its column allows"), pg_db.session() as session:
        KitRepo(session).create("x" * 65, "Long", "longtoken", "bottle")
    with pytest.raises(IntegrityViolation, match="rule ck_kit_assets_size"), pg_db.session() as session:
        kit = KitRepo(session).create("beta", "Beta", "betatoken", "cup")
        AssetRepo(session).add(kit.id, "c" * 64, "photo", "x.png", 0, 0)
    with pg_db.session(write=False) as session:
        assert [k.slug for k in KitRepo(session).list()] == ["acme"]


def test_a_bare_postgresql_url_uses_psycopg(pg_url: str) -> None:
    engine = make_engine(pg_url.replace("postgresql+psycopg://", "postgresql://"))
    try:
        assert engine.dialect.driver == "psycopg"
        with engine.connect() as connection:
            assert connection.execute(text("SELECT 1")).scalar() == 1
    finally:
        engine.dispose()


def test_concurrent_snapshots_of_one_kit_share_one_version(pg_db: Database, pg_url: str) -> None:
    with pg_db.session() as session:
        kit_id = KitRepo(session).create("acme", "Acme", "acmebrand", "bottle").id
    other = Database(pg_url)
    first_in, results, errors = threading.Event(), [], []

    def second_snapshot() -> None:
        try:
            first_in.wait(timeout=JOIN_S)
            with other.session() as session:
                version, created = KitVersionRepo(session).create_or_get(kit_id, {"v": 1}, "e" * 64, [])
                results.append((version.id, version.number, created))
        except BaseException as err:
            errors.append(err)

    thread = threading.Thread(target=second_snapshot)
    thread.start()
    try:
        with pg_db.session() as session:
            version, created = KitVersionRepo(session).create_or_get(kit_id, {"v": 1}, "e" * 64, [])
            first_in.set()
            _wait_until_a_backend_waits_on_a_lock(pg_db)  # the second snapshot is inside, waiting
        thread.join(JOIN_S)
    finally:
        other.dispose()
    assert errors == []
    assert created and results == [(version.id, 1, False)]


def _wait_until_a_backend_waits_on_a_lock(db: Database) -> None:
    query = text("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()")
    give_up = time.monotonic() + 20
    with db.engine.connect() as connection:
        while connection.execute(query).scalar() == 0:
            assert time.monotonic() < give_up, "the second transaction never reached the lock"
            connection.rollback()
            time.sleep(0.02)


# --- the job queue with several workers -------------------------------------------------------


def test_worker_processes_claim_and_finish_every_job_exactly_once(pg_db: Database, pg_url: str) -> None:
    job_ids = _enqueue(pg_db, 40)
    _add_claim_log(pg_db)
    start = SPAWN.Barrier(4)
    owners = [f"worker-{i}" for i in range(4)]
    workers = [SPAWN.Process(target=pg_workers.drain_queue, args=(pg_url, owner, start, 30.0)) for owner in owners]
    _run(workers)
    _join(workers)

    claims = _claim_log(pg_db)
    assert sorted(job_id for job_id, _, _ in claims) == sorted(job_ids)  # each job claimed once, none lost
    assert {attempt for _, _, attempt in claims} == {1}
    claimed_by = {job_id: owner for job_id, owner, _ in claims}
    with pg_db.session(write=False) as session:
        jobs = JobRepo(session).list(limit=100)
    assert len(jobs) == 40
    for job in jobs:
        assert (job.status, job.attempts, job.progress) == ("succeeded", 1, 1.0)
        assert job.result == {"owner": claimed_by[job.id], "n": job.payload["n"]} and job.lease_owner == claimed_by[job.id]
    assert len(set(claimed_by.values())) >= 2, f"only one worker did any work: {Counter(claimed_by.values())}"


def test_a_stalled_workers_job_is_reclaimed_after_its_lease(pg_db: Database, pg_url: str) -> None:
    (job_id,) = _enqueue(pg_db, 1)
    _add_claim_log(pg_db)
    lease_s = 1.0
    stalled, resume, out = SPAWN.Event(), SPAWN.Event(), SPAWN.Queue()
    stalling = SPAWN.Process(target=pg_workers.stall_after_claim,
                             args=(pg_url, "stalls", lease_s, stalled, resume, out))  # fmt: skip
    stalling.start()
    try:
        assert stalled.wait(JOIN_S), "the first worker never claimed the job"
        kind, last_heartbeat = out.get(timeout=JOIN_S)
        assert kind == "last_heartbeat"
        polling = SPAWN.Process(target=pg_workers.poll_and_finish, args=(pg_url, "rescuer", lease_s, 30.0, out))
        polling.start()
        kind, (claimed_id, claimed_at) = out.get(timeout=JOIN_S)
        assert (kind, claimed_id) == ("claimed", job_id)
        assert claimed_at - last_heartbeat > timedelta(seconds=lease_s)  # not before the lease ran out
        _join([polling])
    finally:
        resume.set()
    kind, late = out.get(timeout=JOIN_S)
    _join([stalling])
    assert (kind, late) == ("late", (False, False))  # the stalled worker finds it lost the job
    assert _claim_log(pg_db) == [(job_id, "stalls", 1), (job_id, "rescuer", 2)]
    with pg_db.session(write=False) as session:
        job = JobRepo(session).get(job_id)
    assert job is not None
    assert (job.status, job.attempts, job.lease_owner, job.result) == ("succeeded", 2, "rescuer", {"owner": "rescuer"})


def test_concurrent_double_submits_create_one_job_per_key(pg_url: str) -> None:
    Database.open(pg_url).dispose()
    keys = [f"click-{i}" for i in range(15)]
    start, out = SPAWN.Barrier(4), SPAWN.Queue()
    clients = [SPAWN.Process(target=pg_workers.submit_keys, args=(pg_url, keys, start, out)) for _ in range(4)]
    _run(clients)
    submitted = [out.get(timeout=JOIN_S) for _ in clients]
    _join(clients)
    for key in keys:
        answers = [(job_id, created) for client in submitted for k, job_id, created in client if k == key]
        assert len({job_id for job_id, _ in answers}) == 1, f"{key}: {answers}"
        assert sorted(created for _, created in answers) == [False, False, False, True]
    database = Database.open(pg_url)
    try:
        with database.session(write=False) as session:
            assert sorted(job.idempotency_key or "" for job in JobRepo(session).list(limit=100)) == sorted(keys)
    finally:
        database.dispose()


def test_claim_next_skips_a_job_another_worker_is_claiming(pg_db: Database, pg_url: str) -> None:
    """A claim in flight (uncommitted) neither blocks the next worker nor hides the other jobs."""
    first_id, second_id, _ = _enqueue(pg_db, 3)
    other = Database(pg_url)
    try:
        with pg_db.session() as holding:
            held = JobRepo(holding).claim_next("w1", 60)
            assert held is not None and held.id == first_id
            with other.session() as session:
                session.execute(text("SET LOCAL lock_timeout = '2s'"))  # waiting would raise, not hang
                taken = JobRepo(session).claim_next("w2", 60)
                assert taken is not None and taken.id == second_id
    finally:
        other.dispose()
    with pg_db.session(write=False) as session:
        owners = {job.id: job.lease_owner for job in JobRepo(session).list()}
    assert (owners[first_id], owners[second_id]) == ("w1", "w2")


def test_requeue_and_give_up_skip_a_job_being_reclaimed(pg_db: Database, pg_url: str) -> None:
    (job_id,) = _enqueue(pg_db, 1)
    with pg_db.session() as session:
        assert JobRepo(session).claim_next("dead", lease_s=1) is not None
    later = utcnow() + timedelta(seconds=30)  # "dead" stopped heartbeating long ago
    other = Database(pg_url)
    try:
        with pg_db.session() as reclaiming:
            again = JobRepo(reclaiming).claim_next("w1", 60, now=later)
            assert again is not None and again.attempts == 2
            with other.session() as session:  # a reaper and a strict worker run meanwhile
                session.execute(text("SET LOCAL lock_timeout = '2s'"))
                assert JobRepo(session).requeue_expired(now=later) == 0
                assert JobRepo(session).claim_next("w2", 60, max_attempts=1, now=later) is None
        with pg_db.session(write=False) as session:
            job = JobRepo(session).get(job_id)
            assert job is not None and (job.status, job.lease_owner, job.attempts) == ("running", "w1", 2)
        with other.session() as session:  # once w1's own lease runs out, the reaper does requeue it
            assert JobRepo(session).requeue_expired(now=later + timedelta(minutes=2)) == 1
        with other.session() as session:
            assert JobRepo(session).claim_next("w3", 60, max_attempts=2, now=later + timedelta(minutes=2)) is None
        with pg_db.session(write=False) as session:
            job = JobRepo(session).get(job_id)
            assert job is not None and job.status == "failed" and "gave up after 2 attempts" in (job.error or "")
    finally:
        other.dispose()
