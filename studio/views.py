"""Turn storage rows into the frozen views of :mod:`studio.schemas` (no ORM object leaves the facade)."""

from __future__ import annotations

from typing import Any

from studio.schemas import (
    AppliedLoraView,
    AssetView,
    GeneratedImageView,
    GenerationView,
    KitView,
    LoraView,
    TrainingRunView,
)


def photo_count(kit: Any) -> int:
    return sum(1 for a in kit.assets if a.kind == "photo")


def kit_view(kit: Any, photo_count: int) -> KitView:
    return KitView(
        id=kit.id, slug=kit.slug, name=kit.name, trigger_token=kit.trigger_token, class_noun=kit.class_noun,
        description=kit.description, photo_count=photo_count, created_at=kit.created_at,
        background_color=kit.background_color, logo_count=sum(1 for a in kit.assets if a.kind == "logo"),
    )  # fmt: skip


def asset_view(asset: Any, caption_warnings: tuple[str, ...] = ()) -> AssetView:
    return AssetView(
        id=asset.id, kit_id=asset.kit_id, kind=asset.kind, label=asset.original_name, width=asset.width,
        height=asset.height, caption=asset.caption, blob_sha256=asset.blob_sha256,
        warnings=tuple(asset.warnings or ()), caption_warnings=tuple(caption_warnings),
        mask_sha256=asset.mask_sha256, source=asset.source, licence=asset.licence, consent=asset.consent,
    )  # fmt: skip


def lora_view(row: Any, short_hash: str) -> LoraView:
    return LoraView(
        id=row.id, name=row.name, kit_id=row.kit_id, training_run_id=row.training_run_id,
        sha256=row.blob_sha256, short_hash=short_hash, rank=row.rank, alpha=row.alpha,
        base_model_ref=row.base_model_ref, trigger_phrase=row.trigger_phrase, created_at=row.created_at,
        kohya_sha256=row.kohya_sha256, step=row.step,
    )  # fmt: skip


def run_view(run: Any, lora: LoraView | None, kit_version: int | None = None) -> TrainingRunView:
    metrics = run.metrics or {}
    losses = metrics.get("losses") or []
    return TrainingRunView(
        id=run.id, kit_id=run.kit_id, kit_version=kit_version, job_id=run.job_id, status=run.status, steps=int(metrics.get("steps", 0)),
        final_loss=metrics.get("final_loss"), first_loss=losses[0] if losses else None,
        elapsed_s=metrics.get("elapsed_s"), error=run.error, lora=lora,
        resumed_from_step=int(metrics.get("resumed_from_step", 0)), tensor_sha256=metrics.get("tensor_sha256"),
    )  # fmt: skip


def generation_view(gen: Any) -> GenerationView:
    recipe = gen.recipe or {}
    loras = tuple(
        AppliedLoraView(lora_id=x["id"], name=x["name"], weight=x["weight"]) for x in recipe.get("loras", [])
    )
    images = tuple(
        GeneratedImageView(
            generation_id=gen.id, index=img.index, seed=img.seed, blob_sha256=img.blob_sha256,
            pixel_sha256=img.pixel_sha256, parameters=img.parameters,
        )  # fmt: skip
        for img in gen.images
    )
    return GenerationView(
        id=gen.id, created_at=gen.created_at, parent_id=gen.parent_id, kit_id=gen.kit_id, prompt=gen.prompt,
        negative_prompt=gen.negative_prompt, model_ref=gen.model_ref, model_hash=gen.model_hash,
        scheduler=gen.scheduler, num_inference_steps=gen.num_inference_steps,
        guidance_scale=gen.guidance_scale, width=gen.width, height=gen.height, seed=gen.seed, loras=loras,
        images=images, warnings=tuple(recipe.get("warnings", [])), mode=gen.mode,
    )  # fmt: skip
