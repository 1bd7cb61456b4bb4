"""``brand-studio worker``: claims queued jobs with a lease, heartbeats while it works, and leaves a
liveness file so the studio knows one is running. A killed worker's job is re-claimed after its lease
expires and resumes from the last checkpoint. Several workers (on several machines sharing the
database and the data folder) never run the same job twice.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

import storage
from studio import errors

if TYPE_CHECKING:
    from studio.api import Studio

logger = logging.getLogger(__name__)

MAX_ATTEMPTS = 3
ALIVE_WITHIN_S = 15.0


def workers_dir(studio: Studio) -> Path:
    return studio.settings.data_dir / "workers"


def worker_alive(studio: Studio) -> bool:
    """Whether some worker touched its liveness file recently."""
    now = time.time()
    folder = workers_dir(studio)
    return folder.is_dir() and any(now - p.stat().st_mtime < ALIVE_WITHIN_S for p in folder.glob("*.json"))


def _touch(path: Path, owner: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"owner": owner, "pid": os.getpid(), "at": time.time()}))
    os.replace(tmp, path)


def run_worker(
    studio: Studio, *, owner: str | None = None, poll_s: float = 1.0, max_jobs: int | None = None,
    stop: threading.Event | None = None,
) -> int:  # fmt: skip
    """Work until ``stop`` is set (or ``max_jobs`` jobs ran); returns how many jobs it ran."""
    from studio import training_run

    owner = owner or f"{socket.gethostname()}-{os.getpid()}"
    stop = stop or threading.Event()
    alive = workers_dir(studio) / f"{owner}.json"
    done = 0
    try:
        while not stop.is_set() and (max_jobs is None or done < max_jobs):
            _touch(alive, owner)
            with studio.db.session() as s:
                job = storage.JobRepo(s).claim_next(owner, studio.settings.job_lease_s, kinds=["train"],
                                                    max_attempts=MAX_ATTEMPTS)  # fmt: skip
                job_id = None if job is None else job.id
            if job_id is None:
                stop.wait(poll_s)
                continue
            logger.info("worker %s runs job %s", owner, job_id)
            try:
                training_run.execute(studio, job_id, owner, progress=lambda _p: _touch(alive, owner),
                                     should_stop=stop.is_set)  # fmt: skip
            except errors.StudioError as exc:
                logger.warning("job %s ended: %s", job_id, exc)
            done += 1
    finally:
        alive.unlink(missing_ok=True)
    return done


def main() -> None:
    from studio.api import open_studio
    from studio.settings import Settings

    settings = Settings()
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    studio = open_studio(settings)
    try:
        run_worker(studio, stop=stop)
    finally:
        studio.close()


if __name__ == "__main__":
    main()
