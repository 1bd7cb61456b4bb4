"""The facade's generation procedure: request -> resolved job -> images in the blob store + one DB row."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import storage
from studio import errors
from studio.generation.imagefile import encode_png
from studio.generation.recipe import RecipeLora, RecipeModel, a1111_parameters, make_recipe
from studio.generation_modes import check_rerender_inputs, prepare_mode_inputs
from studio.generation_seeds import (
    final_size,
    fit_output,
    generation_dims,
    plan_seeds,
    render_batches,
    seed_job_fields,
    seed_recipe,
    seed_replay_fields,
)
from studio.schemas import GenerateRequest, GenerationView, LoraChoice
from studio.views import generation_view

if TYPE_CHECKING:
    from studio.api import StepProgressFn, Studio

logger = logging.getLogger(__name__)


def run_generation(
    studio: Studio,
    req: GenerateRequest,
    progress: StepProgressFn | None,
    *,
    parent_id: int | None,
    seeds: list[int] | None,
    model_ref: str | None = None,
    composed: tuple[str, str] | None = None,
) -> GenerationView:
    """1) model, 2) kit prompt, 3) LoRAs, 4) seeds, 5) render, 6) store files, 7) record the row.

    ``composed`` (final prompt, final negative) replays a recorded recipe instead of composing anew.
    """
    from studio.generation.engine import GenerationJob, LoraSpec

    model = studio.resolve(model_ref)
    prompt, negative = composed if composed is not None else compose_prompt(studio, req)
    kit_id = req.kit_id
    loras = _recipe_loras(studio, req.loras)
    inputs = prepare_mode_inputs(studio, req, model)  # mode inputs read by hash and checked, before any work
    width, height = generation_dims(req, model.default_size, inputs.width, inputs.height)  # ad format: its best size
    seeds, subseeds = plan_seeds(req, seeds)  # seed + i and variation seed + i over all batches
    job = GenerationJob(
        model_path=model.path, prompt=prompt, negative_prompt=negative, scheduler=req.scheduler,
        num_inference_steps=req.num_inference_steps, guidance_scale=req.guidance_scale, width=width,
        height=height, seeds=tuple(seeds),
        loras=tuple(LoraSpec(key=f"l{x.sha256[:16]}", path=studio.lora_file(x.sha256), weight=x.weight) for x in loras),
        **inputs.job_fields, **seed_job_fields(req, subseeds),
    )  # fmt: skip
    try:
        output = render_batches(studio.engine(), job, req.batch_size, progress)  # batch_count batches
        output = fit_output(output, req, (width, height))  # ad format: exact pixel size
    except ValueError as exc:
        raise errors.GenerationError(f"generation failed: {exc}") from exc
    recipe = make_recipe(
        model=RecipeModel(ref=model.ref, name=model.name, sha256=model.sha256, family=model.family),
        prompt=prompt, negative_prompt=negative, user_prompt=req.prompt, user_negative_prompt=req.negative_prompt,
        scheduler=req.scheduler,
        num_inference_steps=req.num_inference_steps, guidance_scale=req.guidance_scale, width=width,
        height=height, seeds=seeds, loras=loras, kit_id=kit_id, app_version=_version(),
        warnings=output.warnings + (_placeholder_warning() if model.is_placeholder else []),
    )  # fmt: skip
    recipe.update(inputs.recipe)  # mode, input hashes, strength, ControlNet... ({} for txt2img)
    recipe.update(seed_recipe(req, subseeds, (width, height)))  # batches, variation seed, ad format
    output_size = final_size(req, inputs.output_size)
    stored = []
    for index, img in enumerate(output.images):
        parameters = a1111_parameters(recipe, img.seed)
        ref = studio.blobs.put_bytes(encode_png(img.image, parameters, recipe, inputs.source_type))
        stored.append((ref, {"index": index, "seed": img.seed, "blob_sha256": ref.sha256,
                             "pixel_sha256": img.pixel_sha256, "parameters": parameters}))  # fmt: skip
    with studio.db.session() as s:
        for ref, _ in stored:
            storage.BlobRepo(s).record(ref, "image/png")
        gen = storage.GenerationRepo(s).create(
            kit_id=kit_id, parent_id=inputs.parent_id if parent_id is None else parent_id, mode=req.mode,
            model_ref=model.ref, model_hash=model.sha256,
            prompt=prompt, negative_prompt=negative, scheduler=req.scheduler,
            num_inference_steps=req.num_inference_steps, guidance_scale=req.guidance_scale,
            width=output_size[0], height=output_size[1], seed=seeds[0], recipe=recipe,
            images=[row for _, row in stored],
            loras=[(x.id, x.weight) for x in loras], inputs=inputs.blobs,
        )  # fmt: skip
        return generation_view(gen)


def rerender(studio: Studio, generation_id: int, progress: StepProgressFn | None) -> GenerationView:
    """Re-run a stored recipe exactly: same model file (checked by hash), LoRAs, seeds and settings."""
    with studio.db.session() as s:
        gen = storage.GenerationRepo(s).get(generation_id)
        if gen is None:
            raise errors.NotFound(f"generation {generation_id} does not exist", field="generation_id")
        recipe: dict[str, Any] = dict(gen.recipe)
    if recipe.get("mode") == "grid":  # an X/Y grid: re-render its cells, draw the sheet again
        from studio.grid import rerender_grid

        return rerender_grid(studio, generation_id, recipe, progress)
    model = studio.resolve(recipe["model"]["ref"])
    if model.sha256 != recipe["model"]["sha256"]:
        raise errors.ModelError(
            f"generation {generation_id} was made with {recipe['model']['name']} "
            f"(hash {recipe['model']['sha256'][:10]}), but {recipe['model']['ref']} now resolves to a file "
            f"with hash {model.short_hash}; restore that model file to re-render exactly"
        )
    req = GenerateRequest.of(
        prompt=recipe["user_prompt"], negative_prompt=recipe.get("user_negative_prompt", ""), kit_id=recipe["kit_id"],
        loras=tuple(LoraChoice(lora_id=x["id"], weight=x["weight"]) for x in recipe["loras"]),
        scheduler=recipe["scheduler"], num_inference_steps=recipe["num_inference_steps"],
        guidance_scale=recipe["guidance_scale"], width=recipe["width"], height=recipe["height"],
        seed=recipe["seed"], batch_size=recipe["batch_size"], **check_rerender_inputs(studio, generation_id, recipe),
        **seed_replay_fields(recipe),
    )  # fmt: skip
    return run_generation(
        studio, req, progress, parent_id=generation_id, seeds=list(recipe["seeds"]), model_ref=model.ref,
        composed=(recipe["prompt"], recipe["negative_prompt"]),
    )


def compose_prompt(studio: Studio, req: GenerateRequest) -> tuple[str, str]:
    """Brand prompt composition: the kit's trigger and class noun lead (unless the user wrote the
    trigger), the style guide's fragment follows, and its don'ts/banned terms join the negative."""
    limit = studio.settings.max_prompt_chars
    prompt, negative = req.prompt.strip(), req.negative_prompt.strip()
    for field, text in (("prompt", prompt), ("negative_prompt", negative)):
        if len(text) > limit:
            raise errors.InvalidInput(f"{field} is {len(text)} characters; the limit is {limit}", field=field)
    if req.kit_id is None:
        return prompt, negative
    kit = studio.get_kit(req.kit_id)
    style = studio.get_style_guide(kit.id)
    if kit.trigger_token not in prompt.replace(",", " ").split():
        prompt = f"{kit.trigger_token} {kit.class_noun}, {prompt}"
    if style.style_fragment:
        prompt = f"{prompt}, {style.style_fragment}"
    negatives = [negative] if negative else []
    if style.negative_prompt:
        negatives.append(style.negative_prompt)
    return prompt, ", ".join(negatives)


def _recipe_loras(studio: Studio, choices: tuple[LoraChoice, ...]) -> list[RecipeLora]:
    ids = [c.lora_id for c in choices]
    if len(set(ids)) != len(ids):
        raise errors.InvalidInput("the same LoRA is listed twice", field="loras")
    out = []
    with studio.db.session() as s:
        for choice in choices:
            row = storage.LoraRepo(s).get(choice.lora_id)
            if row is None:
                raise errors.NotFound(f"LoRA {choice.lora_id} does not exist", field="loras")
            out.append(RecipeLora(id=row.id, name=row.name, sha256=row.blob_sha256,
                                  short_hash=studio._lora_short_hash(row.blob_sha256), weight=choice.weight))  # fmt: skip
    return out


def _placeholder_warning() -> list[str]:
    return [
        "made with the built-in placeholder model (random weights: it draws coloured noise); "
        "set BRAND_STUDIO_BASE_MODEL to a real Stable Diffusion model for real images"
    ]


def _version() -> str:
    from studio.boundary import app_version

    return app_version()
