"""The request fields of the generation modes (img2img, inpaint, outpaint, ControlNet) and their checks.

:class:`GenerationModeFields` is mixed into ``GenerateRequest``. Input images are referenced by the
SHA-256 of a stored blob (``Studio.upload_input_image`` / ``upload_mask`` / ``send_to`` return them).

Two levels of checks, both raising a field-specific :class:`InvalidInput` before any work:

- on construction (:func:`check_mode_fields`): each value is consistent with the mode (no mask in
  img2img, outpaint sides only for outpaint, strength leaves at least one step, canvas <= 2048 px...);
- at generate time (:func:`require_mode_inputs`): the mode has every input it needs. A request from
  ``send_to(..., "inpaint")`` is valid but still needs its mask.

No torch, no DB: the schemas import this module.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, Field, field_validator

from studio.errors import InvalidInput

if TYPE_CHECKING:
    from studio.schemas import GenerateRequest

GenerationMode = Literal["txt2img", "img2img", "inpaint", "outpaint", "controlnet"]
IMAGE_MODES = ("img2img", "inpaint", "outpaint")
SHA256_PATTERN = r"^[0-9a-f]{64}$"
MAX_CANVAS = 2048
#: A1111's default "Denoising strength" is 0.75; outpainting paints the new area from pure noise.
DEFAULT_STRENGTH = {"img2img": 0.75, "inpaint": 0.75, "outpaint": 1.0}
OUTPAINT_SIDES = ("outpaint_left", "outpaint_right", "outpaint_top", "outpaint_bottom")
#: Which modes use each field: a non-default value in another mode is refused, never ignored.
FIELD_MODES: dict[str, tuple[str, ...]] = {
    "init_image": IMAGE_MODES,
    "mask": ("inpaint",),
    "strength": IMAGE_MODES,
    "mask_blur": ("inpaint", "outpaint"),
    **{side: ("outpaint",) for side in OUTPAINT_SIDES},
    "outpaint_fill": ("outpaint",),
    "outpaint_color": ("outpaint",),
    "outpaint_overlap": ("outpaint",),
    "control_image": ("controlnet",),
    "controlnet": ("controlnet",),
    "controlnet_conditioning_scale": ("controlnet",),
    "canny_low_threshold": ("controlnet",),
    "canny_high_threshold": ("controlnet",),
}


class GenerationModeFields(BaseModel):
    """Optional inputs of the modes beyond text-to-image (defaults: plain txt2img)."""

    mode: GenerationMode = "txt2img"
    init_image: str | None = Field(None, pattern=SHA256_PATTERN, description="stored input image (sha256)")
    mask: str | None = Field(None, pattern=SHA256_PATTERN, description="stored grayscale mask: white = repaint")
    strength: float | None = Field(None, description="denoising strength 0 < s <= 1 (None: 0.75, outpaint 1)")
    mask_blur: int = Field(0, ge=0, le=64, description="feather (px); 0 keeps outside pixels byte-identical")
    outpaint_left: int = Field(0, ge=0, le=MAX_CANVAS)
    outpaint_right: int = Field(0, ge=0, le=MAX_CANVAS)
    outpaint_top: int = Field(0, ge=0, le=MAX_CANVAS)
    outpaint_bottom: int = Field(0, ge=0, le=MAX_CANVAS)
    outpaint_fill: Literal["edge", "color"] = "edge"
    outpaint_color: str | None = Field(None, pattern=r"^#[0-9A-Fa-f]{6}$", description="None: kit background")
    outpaint_overlap: int = Field(0, ge=0, le=256, description="also repaint this much of the original's edge")
    control_image: str | None = Field(None, pattern=SHA256_PATTERN, description="stored image for canny edges")
    controlnet: str | None = Field(None, min_length=1, max_length=500, description="folder, .safetensors or hub id")
    controlnet_conditioning_scale: float = Field(1.0, ge=0.0, le=2.0)
    canny_low_threshold: int = Field(100, ge=1, le=255)
    canny_high_threshold: int = Field(200, ge=1, le=255)

    @field_validator("strength")
    @classmethod
    def _strength_range(cls, v: float | None) -> float | None:
        if v is not None and not (math.isfinite(v) and 0 < v <= 1):
            raise ValueError(f"must be greater than 0 and at most 1 (got {v}); 0.75 keeps the layout, 1 repaints all")
        return v

    @field_validator(*OUTPAINT_SIDES)
    @classmethod
    def _side_multiple_of_8(cls, v: int) -> int:
        if v % 8:
            raise ValueError(f"must be a multiple of 8 (try {v - v % 8} or {v - v % 8 + 8})")
        return v

    @field_validator("controlnet_conditioning_scale")
    @classmethod
    def _finite_scale(cls, v: float) -> float:
        if not math.isfinite(v):
            raise ValueError("must be a finite number")
        return v


def check_mode_fields(req: GenerateRequest) -> None:
    """Cross-field checks on construction; raises a field-specific InvalidInput."""
    for name, modes in FIELD_MODES.items():
        if req.mode not in modes and getattr(req, name) != GenerationModeFields.model_fields[name].default:
            raise InvalidInput(f"is only used by mode {' / '.join(modes)} (this request's mode is {req.mode})",
                               field=name)  # fmt: skip
    if req.canny_low_threshold > req.canny_high_threshold:
        raise InvalidInput(f"must not exceed canny_high_threshold ({req.canny_high_threshold})", field="canny_low_threshold")
    if req.strength is not None:
        _check_steps(req.strength, req.num_inference_steps)
    if req.mode == "outpaint":
        check_canvas(req, req.width, req.height)


def _check_steps(strength: float, steps: int) -> None:
    if int(steps * strength) < 1:
        raise InvalidInput(
            f"with {steps} steps, strength {strength:g} leaves no denoising step (steps x strength must be "
            f"at least 1); raise the strength to {math.ceil(100 / steps) / 100:g} or the steps",
            field="strength",
        )


def check_canvas(req: GenerateRequest, width: int | None, height: int | None) -> None:
    """The outpainted canvas must stay within MAX_CANVAS per side."""
    for size, first, second, field in ((width, req.outpaint_left, req.outpaint_right, "outpaint_right"),
                                       (height, req.outpaint_top, req.outpaint_bottom, "outpaint_bottom")):  # fmt: skip
        if size is not None and size + first + second > MAX_CANVAS:
            raise InvalidInput(
                f"the outpainted canvas would be {size + first + second} px ({size} + {first} + {second}); "
                f"the limit is {MAX_CANVAS}",
                field=field,
            )


def resolved_strength(req: GenerateRequest) -> float | None:
    """The strength the image modes run with (the request's, else the mode's default)."""
    if req.mode not in IMAGE_MODES:
        return None
    return req.strength if req.strength is not None else DEFAULT_STRENGTH[req.mode]


def require_mode_inputs(req: GenerateRequest) -> None:
    """At generate time: every input the mode needs is there."""
    needs: list[tuple[bool, str, str]] = [
        (req.mode in IMAGE_MODES and req.init_image is None, "init_image",
         f"mode {req.mode} needs an input image: upload one (upload_input_image) or use send_to"),
        (req.mode == "inpaint" and req.mask is None, "mask",
         "mode inpaint needs a mask (grayscale PNG, white = repaint): upload one with upload_mask"),
        (req.mode == "outpaint" and not any(getattr(req, s) for s in OUTPAINT_SIDES), "outpaint_left",
         "mode outpaint needs at least one side to extend (outpaint_left/right/top/bottom, multiples of 8)"),
        (req.mode == "controlnet" and req.control_image is None, "control_image",
         "mode controlnet needs a control image (its canny edges guide the layout)"),
        (req.mode == "controlnet" and req.controlnet is None, "controlnet",
         "mode controlnet needs a ControlNet model: a diffusers folder, a .safetensors file or a hub id"),
    ]  # fmt: skip
    for missing, field, message in needs:
        if missing:
            raise InvalidInput(message, field=field)
    strength = resolved_strength(req)
    if strength is not None:
        _check_steps(strength, req.num_inference_steps)


def mode_request_fields(recipe: dict[str, Any]) -> dict[str, Any]:
    """The mode fields of a recorded recipe, to rebuild its request exactly (empty for txt2img).

    Resolved values are used (strength, outpaint colour), so a changed default or kit background
    never changes a re-render.
    """
    mode = recipe.get("mode", "txt2img")
    if mode == "txt2img":
        return {}
    fields: dict[str, Any] = {"mode": mode}
    if mode in IMAGE_MODES:
        fields.update(init_image=recipe["init_image_sha256"], strength=recipe["strength"])
    if mode in ("inpaint", "outpaint"):
        fields["mask_blur"] = recipe.get("mask_blur", 0)
    if mode == "inpaint":
        fields["mask"] = recipe["mask_sha256"]
    if mode == "outpaint":
        out = recipe["outpaint"]
        fields.update({f"outpaint_{side}": out[side] for side in ("left", "right", "top", "bottom")})
        fields.update(outpaint_fill=out["fill"], outpaint_color=out["color"], outpaint_overlap=out["overlap"])
    if mode == "controlnet":
        unit = recipe["controlnet"]
        fields.update(control_image=recipe["control_image_sha256"], controlnet=unit["ref"],
                      controlnet_conditioning_scale=unit["conditioning_scale"],
                      canny_low_threshold=unit["low_threshold"], canny_high_threshold=unit["high_threshold"])  # fmt: skip
    return fields
