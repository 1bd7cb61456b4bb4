"""One-click training as a job: enqueue (idempotent), execute under a lease (worker or inline),
resume after a killed worker from the last checkpoint, register the LoRA."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import brand_kits
import storage
from studio import errors
from studio.schemas import JobView, TrainingRunView, TrainPresetView, TrainProgressView, TrainRequest
from studio.views import lora_view, run_view

if TYPE_CHECKING:
    from studio.api import Studio, TrainProgressFn

logger = logging.getLogger(__name__)

HEARTBEAT_EVERY_S = 1.0


#: One-click settings per base model (a data table; the training issue refines it by kit size and VRAM).
#: The placeholder row is tuned so the tiny model measurably learns in well under a minute on CPU.
PRESETS: dict[str, TrainPresetView] = {
    "placeholder": TrainPresetView(name="CPU smoke (built-in model)", max_train_steps=40, rank=8,
                                   learning_rate=3e-3, train_batch_size=4, resolution=64),
    "sd1": TrainPresetView(name="SD 1.x", max_train_steps=800, rank=16, learning_rate=1e-4,
                           train_batch_size=1, resolution=512),
    "sd2": TrainPresetView(name="SD 2.x", max_train_steps=800, rank=16, learning_rate=1e-4,
                           train_batch_size=1, resolution=768),
}  # fmt: skip


def preset_for(studio: Studio) -> TrainPresetView:
    model = studio.resolve()
    if model.family not in PRESETS:
        raise errors.InvalidInput(
            f"training on {model.family.upper()} base models is not supported yet; use an SD 1.x or 2.x base "
            "model (BRAND_STUDIO_BASE_MODEL) to train a LoRA", field="base_model",
        )  # fmt: skip
    return PRESETS["placeholder" if model.is_placeholder else model.family]


def enqueue(studio: Studio, req: TrainRequest) -> JobView:
    """Queue a training job on the kit as it is now (frozen as a version). A double click, or a retry
    of the same request on the same kit content, returns the job already queued/running/done."""
    from studio import curation

    kit = studio.get_kit(req.kit_id)
    if kit.photo_count == 0:
        raise errors.InvalidInput("this brand kit has no photos yet; upload a few product photos first",
                                  field="kit_id")  # fmt: skip
    preset_for(studio)
    version = curation.make_version(studio, kit.id)
    request = req.model_dump()
    digest = hashlib.sha256(json.dumps(request, sort_keys=True).encode()).hexdigest()[:16]
    key = f"train:{kit.id}:{version.manifest_sha256[:16]}:{digest}"
    with studio.db.session() as s:
        repo = storage.JobRepo(s)
        retry = 0
        while (existing := repo.get_by_key(f"{key}:{retry}")) is not None and existing.status in ("failed", "cancelled"):
            retry += 1  # a failed or cancelled attempt may be retried with a fresh job
        job, _ = repo.enqueue("train", {"kit_id": kit.id, "version_id": version.id, "request": request},
                              idempotency_key=f"{key}:{retry}")  # fmt: skip
        return job_view(job)


def run_training(studio: Studio, req: TrainRequest, progress: TrainProgressFn | None) -> TrainingRunView:
    """Queue the job and run it now, in this process (the CLI without a worker, tests)."""
    job = enqueue(studio, req)
    owner = f"inline-{os.getpid()}-{threading.get_ident()}"
    with studio.db.session() as s:
        claimed = storage.JobRepo(s).claim(job.id, owner, studio.settings.job_lease_s)
    if claimed is None:
        raise errors.Conflict(f"training job {job.id} for this kit is already {job.status}; "
                              "watch it on the Train page", field="kit_id")  # fmt: skip
    return execute(studio, job.id, owner, progress)


def execute(
    studio: Studio, job_id: int, owner: str, progress: TrainProgressFn | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> TrainingRunView:  # fmt: skip
    """Run a claimed training job: 1) payload, 2) run row, 3) folder + config, 4) train, 5) register.

    Its work folder lives under ``work/jobs/<id>`` so a re-claimed job (after a killed worker) finds
    the checkpoints of the previous attempt and resumes from the last complete one.
    """
    import training
    from studio import curation

    with studio.db.session() as s:
        job = storage.JobRepo(s).get(job_id)
        payload = dict(job.payload) if job is not None else {}
    req = TrainRequest.of(**payload["request"])
    snap = curation.version_snapshot(studio, payload["version_id"])
    model = studio.resolve()
    name = req.name or _next_name(studio, snap.slug)
    work = studio.settings.work_dir / "jobs" / str(job_id)
    run_id = _run_row(studio, job_id, payload, model.ref)
    lost = _LeaseWatch()
    try:
        config = _make_config(studio, req, preset_for(studio), name, snap, curation.training_items(studio, snap), work)
        config.metadata.update(curation.rights_metadata(snap))
        config.metadata["ss_training_comment"] += f"; kit version {payload['version_id']}"
        resumed_from = _enable_resume(config, work)
        result = training.train(config, progress=_progress_bridge(studio, job_id, owner, progress, lost),
                                should_stop=lambda: lost.lost or bool(should_stop and should_stop()))  # fmt: skip
        if lost.lost:
            raise errors.TrainingError("this worker lost the job's lease; another worker continues it")
        if result.steps < config.max_train_steps:
            _finish(studio, run_id, job_id, owner, "cancelled", "stopped before the last step")
            raise errors.TrainingError(f"training stopped at step {result.steps} of {config.max_train_steps}")
        view = _register(studio, run_id, job_id, owner, payload["kit_id"], payload["version_id"], name, model.ref,
                         config, result, resumed_from)  # fmt: skip
        shutil.rmtree(work, ignore_errors=True)
        return view
    except training.TrainConfigError as exc:
        _finish(studio, run_id, job_id, owner, "failed", str(exc))
        raise errors.InvalidInput(f"training settings rejected: {exc}") from exc
    except errors.StudioError:
        raise
    except (RuntimeError, ValueError, OSError) as exc:
        _finish(studio, run_id, job_id, owner, "failed", f"{type(exc).__name__}: {exc}")
        raise errors.TrainingError(f"training failed: {exc}") from exc


def _make_config(
    studio: Studio, req: TrainRequest, preset: TrainPresetView, name: str, kit: Any,
    items: list[brand_kits.TrainingItem], work: Path,
) -> Any:  # fmt: skip
    import training

    data_dir = work / "dataset"
    if not data_dir.is_dir():  # a resumed attempt reuses the same training folder
        brand_kits.write_training_folder(items, data_dir)
    model = studio.resolve()
    rank = req.rank or preset.rank
    return training.TrainConfig(
        pretrained_model=str(model.path), data_dir=str(data_dir), output_dir=str(work / "out"), output_name=name,
        resolution=req.resolution or preset.resolution, max_train_steps=req.max_train_steps or preset.max_train_steps,
        learning_rate=req.learning_rate or preset.learning_rate, rank=rank, alpha=float(rank),
        train_batch_size=min(req.train_batch_size or preset.train_batch_size, len(items)),
        optimizer="adamw" if req.optimizer == "adamw" else "adamw8bit", seed=req.seed,
        metadata=_lora_metadata(name, kit.trigger_token, kit.class_noun, model.name),
    )  # fmt: skip



class _LeaseWatch:
    lost = False


def _run_row(studio: Studio, job_id: int, payload: dict[str, Any], base_ref: str) -> int:
    """The job's training run: created on the first attempt, reused by later ones."""
    with studio.db.session() as s:
        repo = storage.TrainingRunRepo(s)
        run = next((r for r in repo.list_for_kit(payload["kit_id"]) if r.job_id == job_id), None)
        if run is None:
            run = repo.create(payload["kit_id"], base_ref, {}, job_id=job_id, kit_version_id=payload["version_id"])
        repo.mark(run.id, "running")
        return run.id


def _enable_resume(config: Any, work: Path) -> int:
    """Checkpoint a few times per run; resume from the last complete checkpoint if one exists.

    Returns the step it resumes from (0 for a fresh start), recorded in the run's metrics.
    """
    config.checkpointing_steps = max(1, config.max_train_steps // 4)
    steps = [int(p.name.removeprefix("step-")) for p in (work / "out" / "checkpoints").glob("step-*")
             if p.name.removeprefix("step-").isdigit()]  # fmt: skip
    if steps:
        config.resume_from = "latest"
    return max(steps, default=0)


def job_view(job: Any) -> JobView:
    return JobView(id=job.id, kind=job.kind, status=job.status, progress=job.progress, message=job.message,
                   error=job.error, attempts=job.attempts, result=dict(job.result or {}),
                   created_at=job.created_at, updated_at=job.updated_at)  # fmt: skip


def _next_name(studio: Studio, slug: str) -> str:
    taken = {x.name for x in studio.list_loras()}
    n = 1
    while f"{slug}-v{n}" in taken:
        n += 1
    return f"{slug}-v{n}"


def _lora_metadata(name: str, trigger: str, class_noun: str, base_name: str) -> dict[str, str]:
    return {
        "modelspec.title": name,
        "modelspec.trigger_phrase": f"{trigger} {class_noun}",
        "modelspec.usage_hint": f"Trigger phrase: {trigger} {class_noun}",
        "modelspec.description": f"Brand Studio LoRA for {trigger} {class_noun}, trained on {base_name}",
        "ss_output_name": name,
        "ss_sd_model_name": base_name,
    }


def _progress_bridge(
    studio: Studio, job_id: int, owner: str, progress: TrainProgressFn | None, lost: _LeaseWatch
) -> Any:
    last = [0.0]

    def on_step(p: Any) -> None:
        if progress is not None:
            progress(TrainProgressView(step=p.step, total_steps=p.total_steps, loss=p.loss))
        now = time.monotonic()
        if now - last[0] >= HEARTBEAT_EVERY_S or p.step == p.total_steps:
            last[0] = now
            with studio.db.session() as s:
                kept = storage.JobRepo(s).heartbeat(
                    job_id, owner, studio.settings.job_lease_s, progress=p.step / p.total_steps,
                    message=f"step {p.step}/{p.total_steps}, loss {p.loss:.4f}",
                )  # fmt: skip
            lost.lost = lost.lost or not kept

    return on_step


def _register(
    studio: Studio, run_id: int, job_id: int, owner: str, kit_id: int, version_id: int, name: str, base_ref: str,
    config: Any, result: Any, resumed_from: int = 0,
) -> TrainingRunView:  # fmt: skip
    ref = studio.blobs.put_file(Path(result.lora_path))
    metrics = {
        "resumed_from_step": resumed_from,
        "steps": result.steps, "losses": [float(x) for x in result.losses], "final_loss": float(result.final_loss),
        "elapsed_s": float(result.elapsed_s), "tensor_sha256": result.tensor_sha256,
    }  # fmt: skip
    with studio.db.session() as s:
        storage.BlobRepo(s).record(ref, "application/x-safetensors")
        lora = storage.LoraRepo(s).create(
            name, ref.sha256, base_ref, config.rank, config.alpha, kit_id=kit_id, training_run_id=run_id,
            trigger_phrase=config.metadata["modelspec.trigger_phrase"], kit_version_id=version_id,
        )  # fmt: skip
        run = storage.TrainingRunRepo(s).mark(run_id, "succeeded", metrics=metrics)
        storage.JobRepo(s).finish(job_id, owner, "succeeded", result={"lora_id": lora.id, "training_run_id": run_id})
        number = storage.KitVersionRepo(s).get(version_id).number  # type: ignore[union-attr]
        return run_view(run, lora_view(lora, studio._lora_short_hash(ref.sha256)), number)


def _finish(studio: Studio, run_id: int, job_id: int, owner: str, status: str, message: str) -> None:
    logger.error("training run %s %s: %s", run_id, status, message)
    with studio.db.session() as s:
        storage.TrainingRunRepo(s).mark(run_id, status, error=message)  # type: ignore[arg-type]
        storage.JobRepo(s).finish(job_id, owner, status, error=message)  # type: ignore[arg-type]
