"""Recipes: the complete, JSON-able description of how an image was made, and its A1111 text.

A recipe plus the same model and LoRA files reproduces the image's pixels exactly on the same
machine. Pure functions: no torch, no DB.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from studio.generation.infotext import build_parameters, format_lora_hashes
from studio.generation.mode_recipe import mode_parameters
from studio.generation.schedulers import SCHEDULERS
from studio.generation.seed_recipe import seed_parameters

RECIPE_SCHEMA = 1
APP_NAME = "Brand Studio"


@dataclass(frozen=True)
class RecipeLora:
    id: int
    name: str
    sha256: str
    short_hash: str
    weight: float


@dataclass(frozen=True)
class RecipeModel:
    ref: str
    name: str
    sha256: str
    family: str


def make_recipe(
    *,
    model: RecipeModel,
    prompt: str,
    negative_prompt: str,
    user_prompt: str,
    user_negative_prompt: str,
    scheduler: str,
    num_inference_steps: int,
    guidance_scale: float,
    width: int,
    height: int,
    seeds: list[int],
    loras: list[RecipeLora],
    kit_id: int | None,
    app_version: str,
    warnings: list[str],
) -> dict[str, Any]:
    """Everything needed to re-render, plus what a reviewer wants to see."""
    return {
        "schema": RECIPE_SCHEMA,
        "mode": "txt2img",
        "model": {"ref": model.ref, "name": model.name, "sha256": model.sha256, "family": model.family},
        "prompt": prompt,
        "negative_prompt": negative_prompt,
        "user_prompt": user_prompt,
        "user_negative_prompt": user_negative_prompt,
        "scheduler": scheduler,
        "num_inference_steps": num_inference_steps,
        "guidance_scale": guidance_scale,
        "width": width,
        "height": height,
        "seed": seeds[0],
        "seeds": seeds,
        "batch_size": len(seeds),
        "rng": "cpu",
        "loras": [
            {"id": x.id, "name": x.name, "sha256": x.sha256, "short_hash": x.short_hash, "weight": x.weight}
            for x in loras
        ],
        "kit_id": kit_id,
        "app_version": app_version,
        "warnings": warnings,
    }


def a1111_parameters(recipe: dict[str, Any], seed: int) -> str:
    """The A1111 ``parameters`` text of one image of ``recipe`` (the image with ``seed``)."""
    spec = SCHEDULERS[recipe["scheduler"]]
    loras = recipe["loras"]
    prompt = recipe["prompt"] + "".join(f" <lora:{x['name']}:{x['weight']:g}>" for x in loras)
    params: dict[str, object] = {
        "Steps": recipe["num_inference_steps"],
        "Sampler": spec.a1111_sampler,
        "Schedule type": spec.a1111_schedule,
        "CFG scale": recipe["guidance_scale"],
        "Seed": seed,
        "Size": f"{recipe['width']}x{recipe['height']}",
        "Model hash": recipe["model"]["sha256"][:10],
        "Model": recipe["model"]["name"],
        "RNG": "CPU",
    }
    params.update(mode_parameters(recipe))  # img2img/inpaint/outpaint/ControlNet keys; {} for txt2img
    params.update(seed_parameters(recipe, seed))  # variation seed, seed resize, ad format; {} if unused
    if loras:
        params["Lora hashes"] = format_lora_hashes({x["name"]: x["short_hash"] for x in loras})
    params["Version"] = f"{APP_NAME} {recipe['app_version']}"
    return build_parameters(prompt, recipe["negative_prompt"], params)
