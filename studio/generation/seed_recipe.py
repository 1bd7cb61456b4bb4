"""Recipe fields and A1111 ``parameters`` keys of the seed controls, batches and ad formats. Pure.

A1111 writes [src ``modules/processing.py`` create_infotext] ``Variation seed`` (the image's own
variation seed) and ``Variation seed strength`` only when the strength is not 0, and ``Seed resize
from: WxH`` only when both sides are set. An ad format has no A1111 key: ``Ad format`` and ``Final
size`` follow as extension keys (A1111 keeps and ignores them); ``Size`` stays the generated size,
which is what A1111 needs to draw the same image.
"""

from __future__ import annotations

from typing import Any


def seed_recipe_fields(
    *,
    batch_size: int,
    batch_count: int,
    subseeds: list[int] | None,
    subseed_strength: float,
    seed_resize_from: tuple[int, int] | None,
    ad_format: dict[str, Any] | None,
) -> dict[str, Any]:
    """The keys added to a recipe (``recipe.update(...)``); old recipes lack them (= the defaults)."""
    return {
        "batch_size": batch_size,
        "batch_count": batch_count,
        "subseed": subseeds[0] if subseeds else None,
        "subseeds": subseeds or [],
        "subseed_strength": subseed_strength,
        "seed_resize_from": list(seed_resize_from) if seed_resize_from else None,
        "format": ad_format,
    }


def seed_parameters(recipe: dict[str, Any], seed: int) -> dict[str, object]:
    """The A1111 keys of these fields for the image with ``seed`` ({} when none is in use)."""
    params: dict[str, object] = {}
    strength = recipe.get("subseed_strength") or 0.0
    subseeds = recipe.get("subseeds") or []
    if strength and subseeds:
        index = recipe["seeds"].index(seed) if seed in recipe["seeds"] else 0
        params["Variation seed"] = subseeds[index] if index < len(subseeds) else subseeds[0]
        params["Variation seed strength"] = strength
    resize = recipe.get("seed_resize_from")
    if resize:
        params["Seed resize from"] = f"{resize[0]}x{resize[1]}"
    fmt = recipe.get("format")
    if fmt:
        params["Ad format"] = fmt["key"]
        params["Final size"] = f"{fmt['final_size'][0]}x{fmt['final_size'][1]}"
    return params

