"""Training as a background job: idempotent enqueue, a worker with a lease, and a worker killed with
SIGKILL mid-run whose job is re-claimed after the lease expires and finished by another worker."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch

from studio.api import Studio, open_studio
from studio.schemas import KitCreateRequest, TrainRequest
from studio.settings import Settings
from studio.worker import run_worker, worker_alive
from tests.fixtures import product_uploads, seed_data_dir

ROOT = Path(__file__).resolve().parents[2]


def _kit(studio: Studio) -> int:
    return studio.create_kit(KitCreateRequest.of(name="Acme", trigger_token="acm_kit", class_noun="bottle"),
                             product_uploads(3)).id  # fmt: skip


def test_double_click_gives_one_job_and_a_worker_runs_it(studio: Studio) -> None:
    kit_id = _kit(studio)
    req = TrainRequest.of(kit_id=kit_id, max_train_steps=3)
    first, second = studio.enqueue_training(req), studio.enqueue_training(req)
    assert first.id == second.id and first.status == "queued"
    assert run_worker(studio, owner="test-worker", max_jobs=1, poll_s=0.1) == 1
    job = studio.get_job(first.id)
    assert job.status == "succeeded" and job.attempts == 1 and job.progress == 1.0
    [lora] = studio.list_loras(kit_id)
    assert job.result["lora_id"] == lora.id
    assert studio.enqueue_training(req).id == first.id  # same kit content + settings: nothing new to do
    assert not worker_alive(studio)  # the liveness file goes with the worker


def test_killed_worker_job_is_requeued_and_finished(tmp_path: Path, tiny_model_dir: Path) -> None:
    data_dir = seed_data_dir(tmp_path / "data", tiny_model_dir)
    settings = Settings(data_dir=data_dir, job_lease_s=3.0)
    studio = open_studio(settings)
    kit_id = _kit(studio)
    job = studio.enqueue_training(TrainRequest.of(kit_id=kit_id, max_train_steps=40))
    # Same torch thread count in the killed worker and here: CPU results are bit-exact only then.
    env = {**os.environ, "BRAND_STUDIO_DATA_DIR": str(data_dir), "BRAND_STUDIO_JOB_LEASE_S": "3",
           "OMP_NUM_THREADS": str(torch.get_num_threads()), "PYTHONPATH": str(ROOT)}  # fmt: skip
    worker = subprocess.Popen([sys.executable, "-m", "studio.worker"], env=env, cwd=ROOT,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        deadline = time.monotonic() + 180
        checkpoints = data_dir / "work" / "jobs" / str(job.id) / "out" / "checkpoints"
        while not any(checkpoints.glob("step-*")) or studio.get_job(job.id).progress < 0.3:
            assert time.monotonic() < deadline, "the worker never made progress"
            assert worker.poll() is None, "the worker died on its own"
            time.sleep(0.3)
    finally:
        worker.send_signal(signal.SIGKILL)
        worker.wait()
    stuck = studio.get_job(job.id)
    assert stuck.status == "running" and stuck.attempts == 1
    stop = threading.Event()
    done = run_worker(studio, owner="rescuer", max_jobs=1, poll_s=0.5, stop=stop)
    assert done == 1
    final = studio.get_job(job.id)
    assert final.status == "succeeded" and final.attempts == 2
    runs = studio.list_training_runs(kit_id)
    assert len(runs) == 1 and runs[0].status == "succeeded" and runs[0].steps == 40
    assert runs[0].resumed_from_step >= 10  # the rescuer continued from the killed worker's checkpoint
    assert len(studio.list_loras(kit_id)) == 1
    studio.close()
    # ... and ended with exactly the LoRA an uninterrupted run of the same job trains.
    other = open_studio(Settings(data_dir=seed_data_dir(tmp_path / "uninterrupted", tiny_model_dir)))
    straight = other.train_lora(TrainRequest.of(kit_id=_kit(other), max_train_steps=40))
    other.close()
    assert straight.resumed_from_step == 0
    assert runs[0].tensor_sha256 == straight.tensor_sha256


def test_worker_gives_up_after_max_attempts(studio: Studio) -> None:
    from storage import JobRepo

    kit_id = _kit(studio)
    job = studio.enqueue_training(TrainRequest.of(kit_id=kit_id, max_train_steps=2))
    with studio.db.session() as s:  # three workers claimed it and died
        row = JobRepo(s).get(job.id)
        assert row is not None
        row.attempts, row.status = 3, "running"
        from datetime import UTC, datetime, timedelta

        row.lease_expires_at = datetime.now(UTC) - timedelta(seconds=1)
    assert run_worker(studio, owner="late", max_jobs=1, poll_s=0.1, stop=_stop_after(1.0)) == 0
    failed = studio.get_job(job.id)
    assert failed.status == "failed" and "gave up after 3 attempts" in (failed.error or "")


def _stop_after(seconds: float) -> threading.Event:
    stop = threading.Event()
    threading.Timer(seconds, stop.set).start()
    return stop


@pytest.mark.parametrize("status", ["failed", "cancelled"])
def test_a_failed_or_cancelled_job_can_be_retried(studio: Studio, status: str) -> None:
    kit_id = _kit(studio)
    req = TrainRequest.of(kit_id=kit_id, max_train_steps=2)
    job = studio.enqueue_training(req)
    assert studio.cancel_job(job.id)
    if status == "failed":
        from storage import JobRepo

        with studio.db.session() as s:
            JobRepo(s).get(job.id).status = "failed"  # type: ignore[union-attr]
    retry = studio.enqueue_training(req)
    assert retry.id != job.id and retry.status == "queued"
