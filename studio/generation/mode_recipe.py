"""Recipe fields and A1111 ``parameters`` keys of the modes beyond text-to-image. Pure: no torch, no DB.

What A1111 writes for the same settings [src ``modules/processing.py`` and sd-webui-controlnet]:

- img2img/inpaint: ``Denoising strength: 0.75`` and ``Init image hash`` (core keys), ``Mask blur: 4``;
- ControlNet unit 0: ``ControlNet 0: "Module: canny, Model: control_v11p_sd15_canny [d14c016b],
  Weight: 1, Resize Mode: Crop and Resize, Low Vram: False, Processor Res: 512, Threshold A: 100,
  Threshold B: 200, Guidance Start: 0, Guidance End: 1, Pixel Perfect: False, Control Mode: Balanced"``.

A1111 has no key for a mask, an outpaint extent or the control image; ours (``Mask hash``,
``Outpaint``, ``Control image hash``) follow as extension keys, which A1111 keeps and ignores.
Hashes in the text are the first 10 hex of the blob's SHA-256; the recipe JSON has them in full.
"""

from __future__ import annotations

from typing import Any

from studio.generation.infotext import format_value


def mode_recipe_fields(
    *,
    mode: str,
    output_size: tuple[int, int],
    strength: float | None = None,
    mask_blur: int = 0,
    init_image_sha256: str | None = None,
    mask_sha256: str | None = None,
    control_image_sha256: str | None = None,
    outpaint: dict[str, Any] | None = None,
    controlnet: dict[str, Any] | None = None,
    parent_generation_id: int | None = None,
) -> dict[str, Any]:
    """The keys a non-txt2img recipe adds (``recipe.update(...)``); everything needed to re-render.

    ``outpaint``: left, right, top, bottom, fill, color, overlap. ``controlnet``: ref, name, sha256,
    short_hash, module, conditioning_scale, low_threshold, high_threshold.
    """
    return {
        "mode": mode,
        "output_size": list(output_size),
        "strength": strength,
        "mask_blur": mask_blur,
        "init_image_sha256": init_image_sha256,
        "mask_sha256": mask_sha256,
        "control_image_sha256": control_image_sha256,
        "outpaint": outpaint,
        "controlnet": controlnet,
        "parent_generation_id": parent_generation_id,
    }


def mode_parameters(recipe: dict[str, Any]) -> dict[str, object]:
    """The A1111 keys of the recipe's mode ({} for txt2img), in the order A1111 writes them."""
    mode = recipe.get("mode", "txt2img")
    if mode == "txt2img":
        return {}
    params: dict[str, object] = {}
    width, height = recipe.get("output_size") or (recipe["width"], recipe["height"])
    params["Size"] = f"{width}x{height}"
    if recipe.get("strength") is not None:
        params["Denoising strength"] = recipe["strength"]
    if recipe.get("init_image_sha256"):
        params["Init image hash"] = recipe["init_image_sha256"][:10]
    if mode in ("inpaint", "outpaint"):
        params["Mask blur"] = recipe.get("mask_blur", 0)
    if recipe.get("mask_sha256"):
        params["Mask hash"] = recipe["mask_sha256"][:10]
    if recipe.get("outpaint"):
        params["Outpaint"] = outpaint_text(recipe["outpaint"])
    if recipe.get("controlnet"):
        params["ControlNet 0"] = controlnet_unit_text(recipe["controlnet"], min(width, height))
    if recipe.get("control_image_sha256"):
        params["Control image hash"] = recipe["control_image_sha256"][:10]
    return params


def controlnet_unit_text(unit: dict[str, Any], processor_res: int) -> str:
    """sd-webui-controlnet's unit text; the canny map is computed at the output size (pixel perfect)."""
    fields = [
        ("Module", unit.get("module", "canny")),
        ("Model", f"{unit['name']} [{unit['short_hash']}]"),
        ("Weight", format_value(float(unit["conditioning_scale"]))),
        ("Resize Mode", "Crop and Resize"),
        ("Low Vram", "False"),
        ("Processor Res", processor_res),
        ("Threshold A", unit["low_threshold"]),
        ("Threshold B", unit["high_threshold"]),
        ("Guidance Start", 0),
        ("Guidance End", 1),
        ("Pixel Perfect", "True"),
        ("Control Mode", "Balanced"),
    ]
    return ", ".join(f"{key}: {value}" for key, value in fields)


def outpaint_text(outpaint: dict[str, Any]) -> str:
    sides = " ".join(f"{side} {outpaint[side]}" for side in ("left", "right", "top", "bottom"))
    fill = "edge" if outpaint.get("fill") == "edge" else f"color {outpaint.get('color')}"
    return f"{sides}, fill {fill}, overlap {outpaint.get('overlap', 0)}"
