"""Validation samples: fixed prompts and seeds rendered from each training checkpoint through the studio's
own engine and prompt composition, stored with the run; and the checkpoint picker that registers the
LoRA of the step the marketer liked best.

The checkpoint's LoRA file is copied into the blob store before rendering (the trainer rotates its
checkpoint folders), so every sample can be turned into a registered LoRA later. Samples use the
kit's composed prompt (trigger, class noun, style fragment, negatives), scheduler ``Euler``, 20 steps,
CFG 7 and seeds 0, 1, ...: the same recipe at every step, so the pictures differ only by the weights.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import storage
from studio import errors
from studio.schemas import GenerateRequest, LoraView, TrainingSampleView
from studio.views import lora_view

if TYPE_CHECKING:
    from studio.api import Studio

logger = logging.getLogger(__name__)

#: The validation scenes, each composed with the kit (trigger + class noun lead, style guide follows).
VALIDATION_PROMPTS = (
    "product photo on a plain background, centered",
    "on a marble table, soft window light",
    "held in a hand outdoors, shallow depth of field",
    "close-up detail shot, studio lighting",
    "lifestyle scene in a modern kitchen",
    "flat lay with props, top view",
    "on a shelf in a shop, bokeh",
    "advertising hero shot, dramatic light",
)
SAMPLE_STEPS = 20
SAMPLE_SCHEDULER = "Euler"
SAMPLE_GUIDANCE = 7.0
LORA_FILE = "lora.safetensors"


class CheckpointSampler:
    """Renders the validation prompts with one checkpoint's LoRA and records them on the run."""

    def __init__(self, studio: Studio, run_id: int, kit_id: int, resolution: int) -> None:
        self.studio = studio
        self.run_id = run_id
        self.kit_id = kit_id
        self.count = studio.settings.validation_images
        model = studio.resolve()
        self.size = 64 if model.is_placeholder else resolution  # the placeholder draws noise: keep it cheap

    def prompts(self) -> list[tuple[str, str, int]]:
        """``(prompt, negative, seed)`` of each validation image, composed with the kit."""
        from studio.generation_run import compose_prompt

        out = []
        for seed, scene in enumerate(VALIDATION_PROMPTS[: self.count]):
            prompt, negative = compose_prompt(self.studio, GenerateRequest(prompt=scene, kit_id=self.kit_id))
            out.append((prompt, negative, seed))
        return out

    def sample(
        self, step: int, checkpoint: Path, on_image: Callable[[], None] | None = None
    ) -> list[TrainingSampleView]:
        """Store the checkpoint's LoRA and render the validation images with it (weight 1);
        ``on_image`` is called after each image (the job heartbeats there)."""
        if self.count == 0:
            return []
        from studio.generation.engine import GenerationJob, LoraSpec
        from studio.generation.imagefile import encode_png
        from studio.generation.recipe import RecipeLora, RecipeModel, a1111_parameters, make_recipe

        lora_ref = self.studio.blobs.put_file(checkpoint / LORA_FILE)
        with self.studio.db.session() as s:
            storage.BlobRepo(s).record(lora_ref, "application/x-safetensors")
        model = self.studio.resolve()
        engine = self.studio.engine()
        key = f"s{lora_ref.sha256[:16]}"
        lora_path = self.studio.lora_file(lora_ref.sha256)
        recipe_lora = RecipeLora(id=0, name=f"run{self.run_id}-step{step}", sha256=lora_ref.sha256,
                                 short_hash=self.studio._lora_short_hash(lora_ref.sha256), weight=1.0)  # fmt: skip
        stored = []
        try:
            for prompt, negative, seed in self.prompts():
                job = GenerationJob(
                    model_path=model.path, prompt=prompt, negative_prompt=negative, scheduler=SAMPLE_SCHEDULER,
                    num_inference_steps=SAMPLE_STEPS, guidance_scale=SAMPLE_GUIDANCE, width=self.size,
                    height=self.size, seeds=(seed,), loras=(LoraSpec(key=key, path=lora_path, weight=1.0),),
                )  # fmt: skip
                image = engine.generate(job).images[0]
                recipe = make_recipe(
                    model=RecipeModel(ref=model.ref, name=model.name, sha256=model.sha256, family=model.family),
                    prompt=prompt, negative_prompt=negative, user_prompt=prompt, user_negative_prompt=negative,
                    scheduler=SAMPLE_SCHEDULER, num_inference_steps=SAMPLE_STEPS, guidance_scale=SAMPLE_GUIDANCE,
                    width=self.size, height=self.size, seeds=[seed], loras=[recipe_lora], kit_id=self.kit_id,
                    app_version="", warnings=[f"validation sample of training run {self.run_id} at step {step}"],
                )  # fmt: skip
                ref = self.studio.blobs.put_bytes(
                    encode_png(image.image, a1111_parameters(recipe, seed), recipe)
                )
                stored.append((prompt, seed, ref))
                if on_image is not None:
                    on_image()
        finally:
            engine.drop_adapter(key)
        with self.studio.db.session() as s:
            rows = []
            for prompt, seed, ref in stored:
                storage.BlobRepo(s).record(ref, "image/png")
                rows.append(storage.TrainingSampleRepo(s).add(self.run_id, step, lora_ref.sha256, prompt, seed,
                                                              ref.sha256))  # fmt: skip
            return [sample_view(r) for r in rows]


def sample_view(row: Any) -> TrainingSampleView:
    return TrainingSampleView(id=row.id, training_run_id=row.training_run_id, step=row.step, prompt=row.prompt,
                              seed=row.seed, image_sha256=row.image_sha256, lora_sha256=row.lora_sha256)  # fmt: skip


def list_samples(studio: Studio, run_id: int) -> list[TrainingSampleView]:
    with studio.db.session() as s:
        if storage.TrainingRunRepo(s).get(run_id) is None:
            raise errors.NotFound(f"training run {run_id} does not exist")
        return [sample_view(r) for r in storage.TrainingSampleRepo(s).list_for_run(run_id)]


def pick_checkpoint(studio: Studio, run_id: int, step: int, name: str | None = None) -> LoraView:
    """Register the LoRA of ``step`` of a finished run (with its kohya copy). Picking the same step
    again returns the LoRA registered the first time."""
    from training.kohya import kohya_from_file

    with studio.db.session() as s:
        run = storage.TrainingRunRepo(s).get(run_id)
        if run is None:
            raise errors.NotFound(f"training run {run_id} does not exist")
        if run.status != "succeeded":
            raise errors.Conflict(
                f"training run {run_id} is {run.status}; pick a checkpoint once it succeeded"
            )
        samples = [r for r in storage.TrainingSampleRepo(s).list_for_run(run_id) if r.step == step]
        if not samples:
            steps = sorted({r.step for r in storage.TrainingSampleRepo(s).list_for_run(run_id)})
            raise errors.InvalidInput(f"run {run_id} has no checkpoint at step {step}; sampled steps: {steps}",
                                      field="step")  # fmt: skip
        final = next(
            (
                x
                for x in storage.LoraRepo(s).list(run.kit_id)
                if x.training_run_id == run_id and x.step is None
            ),
            None,
        )
        if final is None:
            raise errors.Conflict(f"training run {run_id} has no registered LoRA")
        existing = next((x for x in storage.LoraRepo(s).list(run.kit_id)
                         if x.training_run_id == run_id and x.step == step), None)  # fmt: skip
        if existing is not None:
            return lora_view(existing, studio._lora_short_hash(existing.blob_sha256))
        lora_sha, template = samples[0].lora_sha256, final
        fields = (template.base_model_ref, template.rank, template.alpha, template.kit_id, template.trigger_phrase,
                  template.kit_version_id, template.name)  # fmt: skip
    kohya_path = studio.settings.work_dir / "kohya" / f"{lora_sha}.kohya.safetensors"
    kohya_path.parent.mkdir(parents=True, exist_ok=True)
    kohya_ref = None
    if kohya_from_file(studio.lora_file(lora_sha), kohya_path) is not None:
        kohya_ref = studio.blobs.put_file(kohya_path)
    kohya_path.unlink(missing_ok=True)
    base_ref, rank, alpha, kit_id, trigger, version_id, final_name = fields
    with studio.db.session() as s:
        if kohya_ref is not None:
            storage.BlobRepo(s).record(kohya_ref, "application/x-safetensors")
        row = storage.LoraRepo(s).create(
            name or f"{final_name}-step{step}", lora_sha, base_ref, rank, alpha, kit_id=kit_id,
            training_run_id=run_id, trigger_phrase=trigger, kit_version_id=version_id,
            kohya_sha256=kohya_ref.sha256 if kohya_ref is not None else None, step=step,
        )  # fmt: skip
        return lora_view(row, studio._lora_short_hash(row.blob_sha256))
