"""One-click training as a job: enqueue (idempotent), execute under a lease (worker or inline),
resume after a killed worker from the last checkpoint, register the LoRA."""

from __future__ import annotations

import collections
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
from studio import errors, train_presets, training_samples
from studio.schemas import (
    JobView,
    TrainingRunView,
    TrainPlanView,
    TrainPresetView,
    TrainProgressView,
    TrainRequest,
)
from studio.views import lora_view, run_view
from training.preflight import PreflightError

if TYPE_CHECKING:
    from studio.api import Studio, TrainProgressFn

logger = logging.getLogger(__name__)

HEARTBEAT_EVERY_S = 1.0


#: Base-model families the trainer supports.
TRAINABLE_FAMILIES = ("sd1", "sd2", "sdxl")


def check_trainable(studio: Studio) -> None:
    model = studio.resolve()
    if model.family not in TRAINABLE_FAMILIES:
        raise errors.InvalidInput(
            f"training on {model.family.upper()} base models is not supported; use an SD 1.x, 2.x or SDXL base "
            "model (BRAND_STUDIO_BASE_MODEL) to train a LoRA", field="base_model",
        )  # fmt: skip


def enqueue(studio: Studio, req: TrainRequest) -> JobView:
    """Queue a training job on the kit as it is now (frozen as a version). A double click, or a retry
    of the same request on the same kit content, returns the job already queued/running/done."""
    from studio import curation

    kit = studio.get_kit(req.kit_id)
    if kit.photo_count == 0:
        raise errors.InvalidInput("this brand kit has no photos yet; upload a few product photos first",
                                  field="kit_id")  # fmt: skip
    check_trainable(studio)
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
        items = curation.training_items(studio, snap)
        device = train_presets.device_budget(studio)
        preset = train_presets.preset_for(studio, len(items), device)
        logos = studio.get_kit(payload["kit_id"]).logo_count
        config = _make_config(studio, req, preset, name, snap, items, work, logos)
        config.metadata.update(curation.rights_metadata(snap))
        config.metadata["ss_training_comment"] += f"; kit version {payload['version_id']}"
        config, plan = _preflight(studio, run_id, job_id, owner, config, preset, device)
        resumed_from = _enable_resume(config, work)
        sampler = training_samples.CheckpointSampler(studio, run_id, payload["kit_id"], config.resolution)
        bridge = _progress_bridge(studio, job_id, owner, progress, lost, sampler)
        result = training.train(config, progress=bridge,
                                should_stop=lambda: lost.lost or bool(should_stop and should_stop()))  # fmt: skip
        if lost.lost:
            raise errors.TrainingError("this worker lost the job's lease; another worker continues it")
        if result.steps < config.max_train_steps:
            _finish(studio, run_id, job_id, owner, "cancelled", "stopped before the last step")
            raise errors.TrainingError(f"training stopped at step {result.steps} of {config.max_train_steps}")
        view = _register(studio, run_id, job_id, owner, payload["kit_id"], payload["version_id"], name, model.ref,
                         config, result, resumed_from, plan)  # fmt: skip
        shutil.rmtree(work, ignore_errors=True)
        return view
    except training.TrainConfigError as exc:
        _finish(studio, run_id, job_id, owner, "failed", str(exc))
        raise errors.InvalidInput(f"training settings rejected: {exc}") from exc
    except PreflightError as exc:
        _finish(studio, run_id, job_id, owner, "failed", f"preflight: {exc}")
        raise errors.TrainingError(f"not started: {exc}") from exc
    except errors.StudioError:
        raise
    except (RuntimeError, ValueError, OSError) as exc:
        _finish(studio, run_id, job_id, owner, "failed", f"{type(exc).__name__}: {exc}")
        raise errors.TrainingError(f"training failed: {exc}") from exc


def _make_config(
    studio: Studio, req: TrainRequest, preset: TrainPresetView, name: str, kit: Any,
    items: list[brand_kits.TrainingItem], work: Path, logos: int = 0,
) -> Any:  # fmt: skip
    import training

    data_dir = work / "dataset"
    if not data_dir.is_dir():  # a resumed attempt reuses the same training folder
        brand_kits.write_training_folder(items, data_dir)
    model = studio.resolve()
    return training.TrainConfig(
        pretrained_model=str(model.path), data_dir=str(data_dir), output_dir=str(work / "out"), output_name=name,
        metadata=_lora_metadata(name, kit.trigger_token, kit.class_noun, model.name),
        **_settings(req, preset, len(items), logos, prior_settings(studio, kit.class_noun, len(items))),
    )  # fmt: skip


def _settings(
    req: TrainRequest, preset: TrainPresetView, photos: int, logos: int = 0, prior: dict[str, Any] | None = None
) -> dict[str, Any]:  # fmt: skip
    """The TrainConfig settings of a request: explicit values win, the rest comes from the preset.
    Flipping is refused for kits with logos (a mirrored logo is a wrong logo)."""
    rank = req.rank or preset.rank
    return {
        "resolution": req.resolution or preset.resolution,
        "max_train_steps": req.max_train_steps or preset.max_train_steps,
        "learning_rate": req.learning_rate or preset.learning_rate, "rank": rank, "alpha": float(rank),
        "train_batch_size": min(req.train_batch_size or preset.train_batch_size, photos),
        "optimizer": "adamw" if req.optimizer == "adamw" else "adamw8bit", "seed": req.seed,
        "gradient_checkpointing": preset.gradient_checkpointing, "mixed_precision": preset.mixed_precision,
        "random_flip": req.flip and logos == 0, "train_text_encoder": req.train_text_encoder,
        **(prior if req.prior_preservation and prior else {}),
    }  # fmt: skip


def prior_settings(studio: Studio, class_noun: str, photos: int) -> dict[str, Any]:
    """Prior preservation's class images: generic "a photo of a <class noun>" pictures made once by the
    base model and kept per model and class noun under ``data/class_images/`` (reused by later runs)."""
    import re

    model = studio.resolve()
    folder = re.sub(r"[^a-z0-9]+", "-", class_noun.lower()).strip("-") or "class"
    count = 4 if model.is_placeholder else min(200, max(50, 20 * photos))
    return {
        "class_data_dir": str(studio.settings.data_dir / "class_images" / f"{model.sha256[:16]}-{folder}"),
        "class_prompt": f"a photo of a {class_noun}", "num_class_images": count,
    }  # fmt: skip


def preview_plan(studio: Studio, req: TrainRequest) -> TrainPlanView:
    """What one click would run on this machine for the kit: preset, memory estimate, changes. Raises
    ``TrainingError`` with the preflight's explanation when it cannot fit."""
    import training
    from training.preflight import fit_to_budget

    kit = studio.get_kit(req.kit_id)
    check_trainable(studio)
    device = train_presets.device_budget(studio)
    photos = max(1, kit.photo_count)
    preset = train_presets.preset_for(studio, photos, device)
    config = training.TrainConfig(pretrained_model=str(studio.resolve().path), data_dir="", output_dir="",
                                  **_settings(req, preset, photos, kit.logo_count,
                                              prior_settings(studio, kit.class_noun, photos)))  # fmt: skip
    try:
        return train_presets.plan_view(preset, fit_to_budget(config, device))
    except PreflightError as exc:
        raise errors.TrainingError(f"this run would not fit: {exc}") from exc


def _preflight(
    studio: Studio, run_id: int, job_id: int, owner: str, config: Any, preset: TrainPresetView, device: Any
) -> tuple[Any, TrainPlanView]:
    """Fit the run to the device memory before loading anything; record the plan on the run and job."""
    from training.preflight import fit_to_budget

    plan = train_presets.plan_view(preset, fitted := fit_to_budget(config, device))
    with studio.db.session() as s:
        storage.TrainingRunRepo(s).mark(run_id, "running", metrics={"preflight": plan.model_dump(mode="json")})
        message = f"preflight: {plan.estimate_summary} of {plan.budget_mb / 1024:.1f} GB on {plan.device}"
        if plan.changes:
            message += "; " + "; ".join(plan.changes)
        storage.JobRepo(s).heartbeat(job_id, owner, studio.settings.job_lease_s, message=message)
    return fitted.config, plan



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
    studio: Studio, job_id: int, owner: str, progress: TrainProgressFn | None, lost: _LeaseWatch,
    sampler: Any = None,
) -> Any:  # fmt: skip
    """Per optimizer step: caller's progress (step, loss, it/s, ETA), lease heartbeat (at most once a
    second), and validation samples whenever the trainer wrote a checkpoint."""
    last = [0.0]
    recent: collections.deque[tuple[int, float]] = collections.deque(maxlen=20)  # (step, time) of recent steps

    def beat(p: Any, message: str) -> None:
        last[0] = time.monotonic()
        with studio.db.session() as s:
            kept = storage.JobRepo(s).heartbeat(
                job_id, owner, studio.settings.job_lease_s, progress=p.step / p.total_steps, message=message
            )
        lost.lost = lost.lost or not kept

    def on_step(p: Any) -> None:
        now = time.monotonic()
        recent.append((p.step, now))
        step0, time0 = recent[0]
        rate = (p.step - step0) / (now - time0) if now > time0 else 0.0
        eta = (p.total_steps - p.step) / rate if rate > 0 else None
        view = TrainProgressView(step=p.step, total_steps=p.total_steps, loss=p.loss, steps_per_s=rate, eta_s=eta)
        if progress is not None:
            progress(view)
        message = (f"step {p.step}/{p.total_steps} · loss {p.loss:.4f} · {rate:.2f} it/s · "
                   f"ETA {train_presets.steps_label(eta)}")  # fmt: skip
        if now - last[0] >= HEARTBEAT_EVERY_S or p.step == p.total_steps or p.checkpoint is not None:
            beat(p, message)
        if p.checkpoint is not None and sampler is not None:
            # rendering can outlast the lease on slow devices: heartbeat after every image
            sampler.sample(p.step, Path(p.checkpoint), on_image=lambda: beat(p, f"{message} · sampling"))

    return on_step


def _register(
    studio: Studio, run_id: int, job_id: int, owner: str, kit_id: int, version_id: int, name: str, base_ref: str,
    config: Any, result: Any, resumed_from: int = 0, plan: TrainPlanView | None = None,
) -> TrainingRunView:  # fmt: skip
    ref = studio.blobs.put_file(Path(result.lora_path))
    kohya = studio.blobs.put_file(Path(result.kohya_path)) if result.kohya_path is not None else None
    metrics = {
        "preflight": plan.model_dump(mode="json") if plan is not None else None,
        "resumed_from_step": resumed_from,
        "steps": result.steps, "losses": [float(x) for x in result.losses], "final_loss": float(result.final_loss),
        "elapsed_s": float(result.elapsed_s), "tensor_sha256": result.tensor_sha256,
    }  # fmt: skip
    with studio.db.session() as s:
        storage.BlobRepo(s).record(ref, "application/x-safetensors")
        if kohya is not None:
            storage.BlobRepo(s).record(kohya, "application/x-safetensors")
        lora = storage.LoraRepo(s).create(
            name, ref.sha256, base_ref, config.rank, config.alpha, kit_id=kit_id, training_run_id=run_id,
            trigger_phrase=config.metadata["modelspec.trigger_phrase"], kit_version_id=version_id,
            kohya_sha256=kohya.sha256 if kohya is not None else None,
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
