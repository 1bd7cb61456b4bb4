"""The facade's one-click training procedure: kit photos -> training folder -> LoRA -> registered adapter.

This skeleton runs the trainer in the calling process and records it as a job and a training run;
the background worker (lease, heartbeat, resume) builds on the same rows.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import brand_kits
import storage
from studio import errors
from studio.schemas import TrainingRunView, TrainPresetView, TrainProgressView, TrainRequest
from studio.views import lora_view, run_view

if TYPE_CHECKING:
    from studio.api import Studio, TrainProgressFn

logger = logging.getLogger(__name__)

HEARTBEAT_EVERY_S = 1.0
LEASE_S = 300


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


def run_training(studio: Studio, req: TrainRequest, progress: TrainProgressFn | None) -> TrainingRunView:
    """1) kit + preset, 2) training folder + config, 3) job + run rows, 4) train, 5) register, 6) clean up."""

    from studio import curation

    kit = studio.get_kit(req.kit_id)
    if kit.photo_count == 0:
        raise errors.InvalidInput("this brand kit has no photos yet; upload a few product photos first",
                                  field="kit_id")  # fmt: skip
    model = studio.resolve()
    preset = preset_for(studio)
    version = curation.make_version(studio, kit.id)  # training always names an immutable snapshot
    snap = curation.version_snapshot(studio, version.id)
    name = req.name or _next_name(studio, kit.slug)
    work = Path(tempfile.mkdtemp(prefix="train-", dir=studio.settings.work_dir))
    try:
        items = curation.training_items(studio, snap)
        config = _make_config(studio, req, preset, name, snap, items, work)
        config.metadata.update(curation.rights_metadata(snap))
        config.metadata["ss_training_comment"] += f"; kit version {version.number} ({version.manifest_sha256[:12]})"
        return _train_and_register(studio, kit.id, version.id, model.ref, name, req, config, progress)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _make_config(
    studio: Studio, req: TrainRequest, preset: TrainPresetView, name: str, kit: Any,
    items: list[brand_kits.TrainingItem], work: Path,
) -> Any:  # fmt: skip
    import training

    data_dir = brand_kits.write_training_folder(items, work / "dataset")
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


def _train_and_register(
    studio: Studio, kit_id: int, version_id: int, base_ref: str, name: str, req: TrainRequest, config: Any,
    progress: TrainProgressFn | None,
) -> TrainingRunView:  # fmt: skip
    import training

    owner = f"studio-{os.getpid()}"
    with studio.db.session() as s:
        job, _ = storage.JobRepo(s).enqueue("train", {"kit_id": kit_id, "request": req.model_dump()})
        _start_job(job, owner)
        run = storage.TrainingRunRepo(s).create(kit_id, base_ref, config.to_dict(), job_id=job.id,
                                                kit_version_id=version_id)  # fmt: skip
        storage.TrainingRunRepo(s).mark(run.id, "running")
        run_id, job_id = run.id, job.id
    try:
        result = training.train(config, progress=_progress_bridge(studio, job_id, owner, progress))
        return _register(studio, run_id, job_id, owner, kit_id, version_id, name, base_ref, config, result)
    except training.TrainConfigError as exc:
        _fail(studio, run_id, job_id, owner, str(exc))
        raise errors.InvalidInput(f"training settings rejected: {exc}") from exc
    except errors.StudioError as exc:
        _fail(studio, run_id, job_id, owner, str(exc))
        raise
    except (RuntimeError, ValueError, OSError) as exc:
        _fail(studio, run_id, job_id, owner, f"{type(exc).__name__}: {exc}")
        raise errors.TrainingError(f"training failed: {exc}") from exc


def _start_job(job: Any, owner: str) -> None:
    now = datetime.now(UTC)
    job.status, job.lease_owner, job.attempts = "running", owner, job.attempts + 1
    job.lease_expires_at, job.heartbeat_at = now + timedelta(seconds=LEASE_S), now


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
    studio: Studio, job_id: int, owner: str, progress: TrainProgressFn | None
) -> Any:
    last = [0.0]

    def on_step(p: Any) -> None:
        if progress is not None:
            progress(TrainProgressView(step=p.step, total_steps=p.total_steps, loss=p.loss))
        now = time.monotonic()
        if now - last[0] >= HEARTBEAT_EVERY_S or p.step == p.total_steps:
            last[0] = now
            with studio.db.session() as s:
                storage.JobRepo(s).heartbeat(
                    job_id, owner, LEASE_S, progress=p.step / p.total_steps,
                    message=f"step {p.step}/{p.total_steps}, loss {p.loss:.4f}",
                )  # fmt: skip

    return on_step


def _register(
    studio: Studio, run_id: int, job_id: int, owner: str, kit_id: int, version_id: int, name: str, base_ref: str,
    config: Any, result: Any,
) -> TrainingRunView:  # fmt: skip
    ref = studio.blobs.put_file(Path(result.lora_path))
    metrics = {
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


def _fail(studio: Studio, run_id: int, job_id: int, owner: str, message: str) -> None:
    logger.error("training run %s failed: %s", run_id, message)
    with studio.db.session() as s:
        storage.TrainingRunRepo(s).mark(run_id, "failed", error=message)
        storage.JobRepo(s).finish(job_id, owner, "failed", error=message)
