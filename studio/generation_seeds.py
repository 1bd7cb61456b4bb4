"""The facade's seed, batch and ad-format steps of a generation (used by ``generation_run``).

- Seeds: image ``i`` of a press has seed ``seed + i`` and variation seed ``subseed + i`` (A1111),
  counting on across the batches of ``batch_count``; -1 picks a random first one, which is recorded.
- Batches: ``batch_count`` batches of ``batch_size`` images run one after another through the
  engine, all recorded in ONE generation row: the row is "one press of Generate" (storage.models),
  its images are already numbered with their own seeds, and a re-render replays the same batches.
  (A batch of 4 and four singles differ by float rounding on CPU, so the batch split is recorded.)
- Ad formats: generate at a size the model draws well, then fit to the format's exact pixel size.
"""

from __future__ import annotations

import dataclasses
import secrets
from typing import TYPE_CHECKING, Any

from studio.formats import (
    AD_FORMATS,
    AdFormat,
    fit_to_format,
    format_recipe,
    format_warnings,
    generation_size,
)
from studio.generation.seed_recipe import seed_recipe_fields
from studio.seed_fields import MAX_SEED

if TYPE_CHECKING:
    from studio.generation.engine import Engine, GenerationJob, GenerationOutput
    from studio.schemas import GenerateRequest

ProgressFn = Any  # Callable[[int, int], None] | None


def plan_seeds(req: GenerateRequest, seeds: list[int] | None) -> tuple[list[int], list[int] | None]:
    """Every image's seed and variation seed (None without a variation); ``seeds`` replays a recipe."""
    count = req.batch_size * req.batch_count
    if seeds is None:
        first = secrets.randbelow(MAX_SEED + 1) if req.seed == -1 else req.seed
        seeds = [(first + i) % (MAX_SEED + 1) for i in range(count)]
    if not req.subseed_strength:
        return seeds, None
    sub = secrets.randbelow(MAX_SEED + 1) if req.subseed == -1 else req.subseed
    return seeds, [(sub + i) % (MAX_SEED + 1) for i in range(len(seeds))]


def ad_format(req: GenerateRequest) -> AdFormat | None:
    return None if req.format is None else AD_FORMATS[req.format]


def generation_dims(req: GenerateRequest, native_side: int, width: int, height: int) -> tuple[int, int]:
    """The size to render at: an ad format's best size for the model unless width/height are given."""
    fmt = ad_format(req)
    if fmt is None:
        return width, height
    best = generation_size(fmt, native_side)
    return req.width or best[0], req.height or best[1]


def seed_job_fields(req: GenerateRequest, subseeds: list[int] | None) -> dict[str, Any]:
    """The engine job's variation fields."""
    resize = (req.seed_resize_from_w, req.seed_resize_from_h) if req.seed_resize_from_w else None
    return {"subseeds": tuple(subseeds or ()), "subseed_strength": req.subseed_strength if subseeds else 0.0,
            "seed_resize_from": resize}  # fmt: skip


def render_batches(engine: Engine, job: GenerationJob, batch_size: int, progress: ProgressFn) -> GenerationOutput:
    """Run ``job``'s images ``batch_size`` at a time; progress counts steps over all batches."""
    count = max(1, -(-len(job.seeds) // batch_size))
    outputs = []
    for b in range(count):
        part = slice(b * batch_size, (b + 1) * batch_size)
        batch = dataclasses.replace(job, seeds=job.seeds[part], subseeds=job.subseeds[part])
        step = None if progress is None else _batch_progress(progress, b, count)
        outputs.append(engine.generate(batch, step))
    first = outputs[0]
    first.images = [img for out in outputs for img in out.images]
    return first


def _batch_progress(progress: Any, index: int, count: int) -> Any:
    return lambda step, total: progress(index * total + step, total * count)


def fit_output(output: GenerationOutput, req: GenerateRequest, size: tuple[int, int]) -> GenerationOutput:
    """Fit every image to the request's ad format (a no-op without one); adds the crop warning."""
    from studio.generation.engine import pixel_sha256

    fmt = ad_format(req)
    if fmt is None:
        return output
    for img in output.images:
        img.image = fit_to_format(img.image, fmt)
        img.pixel_sha256 = pixel_sha256(img.image)
    output.warnings = output.warnings + format_warnings(fmt, size)
    return output


def final_size(req: GenerateRequest, output_size: tuple[int, int]) -> tuple[int, int]:
    fmt = ad_format(req)
    return output_size if fmt is None else (fmt.width, fmt.height)


def seed_recipe(req: GenerateRequest, subseeds: list[int] | None, size: tuple[int, int]) -> dict[str, Any]:
    """The recipe keys of this module's steps (``recipe.update(...)``)."""
    fmt = ad_format(req)
    return seed_recipe_fields(
        batch_size=req.batch_size, batch_count=req.batch_count, subseeds=subseeds,
        subseed_strength=req.subseed_strength if subseeds else 0.0,
        seed_resize_from=(req.seed_resize_from_w, req.seed_resize_from_h) if req.seed_resize_from_w else None,
        ad_format=None if fmt is None else format_recipe(fmt, size),
    )  # fmt: skip


def seed_replay_fields(recipe: dict[str, Any]) -> dict[str, Any]:
    """GenerateRequest fields that replay a recipe's seeds, batches and format (old recipes: defaults)."""
    resize = recipe.get("seed_resize_from") or (0, 0)
    subseed = recipe.get("subseed")
    return {
        "batch_count": recipe.get("batch_count", 1),
        "subseed": -1 if subseed is None else subseed,
        "subseed_strength": recipe.get("subseed_strength") or 0.0,
        "seed_resize_from_w": resize[0],
        "seed_resize_from_h": resize[1],
        "format": (recipe.get("format") or {}).get("key"),
    }
