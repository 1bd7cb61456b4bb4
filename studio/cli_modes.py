"""The generation-mode options of ``brand-studio generate``: files are uploaded through the facade and
the request names them by hash, exactly as the UI does."""

from __future__ import annotations

from pathlib import Path

import typer

from studio.api import Studio
from studio.schemas import UploadedFile


def infer_mode(
    mode: str | None, init_image: Path | None, mask: Path | None, outpaint: str | None, control_image: Path | None
) -> str:
    """The mode asked for, else the one the given inputs imply (mask: inpaint, outpaint sides: outpaint,
    control image: controlnet, init image: img2img, nothing: txt2img)."""
    if mode is not None:
        return mode
    for given, implied in ((mask, "inpaint"), (outpaint, "outpaint"), (control_image, "controlnet"),
                           (init_image, "img2img")):  # fmt: skip
        if given is not None:
            return implied
    return "txt2img"


def parse_outpaint(value: str | None) -> dict[str, int]:
    """``LEFT,RIGHT,TOP,BOTTOM`` pixels (multiples of 8) as request fields."""
    if value is None:
        return {}
    try:
        left, right, top, bottom = (int(part) for part in value.split(","))
    except ValueError:
        raise typer.BadParameter(f"{value!r}: use LEFT,RIGHT,TOP,BOTTOM pixels, e.g. 128,128,0,0") from None
    return {"outpaint_left": left, "outpaint_right": right, "outpaint_top": top, "outpaint_bottom": bottom}


def mode_fields(
    studio: Studio,
    *,
    mode: str,
    init_image: Path | None,
    mask: Path | None,
    strength: float | None,
    mask_blur: int,
    outpaint: str | None,
    control_image: Path | None,
    controlnet: str | None,
    control_scale: float,
) -> dict[str, object]:
    """The GenerateRequest fields of the mode options (uploading the files); {} for plain txt2img."""
    fields: dict[str, object] = {"mode": mode, **parse_outpaint(outpaint)}
    if init_image is not None:
        fields["init_image"] = studio.upload_input_image(UploadedFile(name=init_image.name, data=init_image.read_bytes()))
    if mask is not None:
        fields["mask"] = studio.upload_mask(UploadedFile(name=mask.name, data=mask.read_bytes()))
    if control_image is not None:
        data = control_image.read_bytes()
        fields["control_image"] = studio.upload_input_image(UploadedFile(name=control_image.name, data=data))
    if strength is not None:
        fields["strength"] = strength
    if mask_blur:
        fields["mask_blur"] = mask_blur
    if controlnet is not None:
        fields["controlnet"] = controlnet
    if control_scale != 1.0:
        fields["controlnet_conditioning_scale"] = control_scale
    return fields
